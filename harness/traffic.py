"""Sends one kind of traffic to the agent and checks the answer a host owes it.

Run inside the bridge's network namespace (`ip netns exec NS python3 -m harness.traffic
...`, from the repository root or with it on PYTHONPATH; the runner does this); the kernel checks every checksum of the reply, so a wrong one is dropped and the
check times out.

    python3 -m harness.traffic udp-echo   --to 192.0.2.2      # UDP to port 7: the same bytes must come back
    python3 -m harness.traffic udp-closed --to 2001:db8::2    # UDP to port 9: the send must see ECONNREFUSED
    python3 -m harness.traffic tcp-syn    --to 192.0.2.2      # TCP connect to port 9: refused at once
    python3 -m harness.traffic ping6      --wait 60 --ping-opts "-s 1232"   # runs ping itself

Without --to, IPv4 kinds go to 192.0.2.2 and IPv6 kinds (`ping6`, `udp-echo6`,
`udp-closed6`, `tcp-syn6`) to 2001:db8::2, the bridge's default agent addresses.
Prints `ok <kind> <to> port <port>: <detail>` and then a reply line in ping's form
(`... from <to>: icmp_seq=1 time=<ms> ms`, `1 received`, which harness/pingout.py reads), or
one line `FAIL <kind> <to> port <port>: <reason>`; exits 0 or 1. `ping` and `ping6` run
ping itself (`-c 1 -W <wait>`). `--ident N` makes the round findable in the bridge's
record: ping's identifier (`-e N`), or the UDP or TCP source port.
"""

import errno
import os
import socket
import sys
import time

from harness import ArgumentParser

DEFAULT_PORT = {"udp-echo": 7, "udp-closed": 9, "tcp-syn": 9}
AGENT = {4: "192.0.2.2", 6: "2001:db8::2"}


class Fail(Exception):
    """The answer was not the one a host owes."""


def family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def opened(to: str, kind: int, sport: int, timeout: float) -> socket.socket:
    """A socket of `to`'s family, bound to source port `sport` (0: any), with a timeout."""
    s = socket.socket(family(to), kind)
    s.settimeout(timeout)
    if sport:
        s.bind(("", sport))
    return s


def udp_echo(to: str, port: int, size: int, timeout: float, sport: int) -> str:
    data = os.urandom(size)
    with opened(to, socket.SOCK_DGRAM, sport, timeout) as s:
        s.connect((to, port))
        s.send(data)
        try:
            got = s.recv(65535)
        except socket.timeout:
            raise Fail(f"no echo within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise Fail("ECONNREFUSED: a port unreachable came back instead of the echo") from None
    if got != data:
        raise Fail(f"echo differs: sent {len(data)} bytes, got {len(got)}")
    return f"{size} bytes echoed"


def udp_closed(to: str, port: int, size: int, timeout: float, sport: int) -> str:
    with opened(to, socket.SOCK_DGRAM, sport, timeout) as s:
        s.connect((to, port))
        s.send(os.urandom(size))
        try:
            got = s.recv(65535)
        except ConnectionRefusedError:
            return "ECONNREFUSED (port unreachable)"
        except socket.timeout:
            raise Fail(f"no port unreachable within {timeout:g} s") from None
    raise Fail(f"got {len(got)} bytes back from a closed port")


def tcp_syn(to: str, port: int, size: int, timeout: float, sport: int) -> str:
    with opened(to, socket.SOCK_STREAM, sport, timeout) as s:
        code = s.connect_ex((to, port))
    if code == errno.ECONNREFUSED:
        return "ECONNREFUSED (reset)"
    if code == 0:
        raise Fail("connected to a port that should be closed")
    if code in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINPROGRESS):
        raise Fail(f"no reset within {timeout:g} s (timed out, not refused)")
    raise Fail(f"connect failed with {errno.errorcode.get(code, code)}, want ECONNREFUSED")


KINDS = {"udp-echo": udp_echo, "udp-closed": udp_closed, "tcp-syn": tcp_syn}
# Every kind --traffic takes: ping, the three above, each also over IPv6.
ALL_KINDS = ["ping", "ping6"] + [k + v for k in KINDS for v in ("", "6")]


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness.traffic", description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=ALL_KINDS)
    ap.add_argument("--to", help="the agent's address (default 192.0.2.2, or 2001:db8::2 for *6)")
    ap.add_argument("--port", type=int, help="destination port (default: 7 for udp-echo, else 9)")
    ap.add_argument("--size", type=int, default=19, help="UDP data bytes (default 19)")
    ap.add_argument("--wait", type=float, default=60, help="seconds to wait for the answer")
    ap.add_argument("--ping-opts", default="", help="extra ping options for ping and ping6")
    ap.add_argument("--ident", type=int, default=0,
                    help="ping's identifier, or the UDP/TCP source port (default: the system's)")
    args = ap.parse_args(argv)
    v6 = args.kind.endswith("6")
    to = args.to or AGENT[6 if v6 else 4]
    kind = args.kind[:-1] if v6 else args.kind
    if kind == "ping":
        wait = str(max(1, round(args.wait)))
        ident = ["-e", str(args.ident)] if args.ident else []
        argv = ["ping", *(["-6"] if v6 else []), "-n", "-c", "1", "-W", wait, *ident,
                *args.ping_opts.split(), to]
        os.execvp("ping", argv)
    port = args.port or DEFAULT_PORT[kind]
    start = time.monotonic()
    try:
        detail = KINDS[kind](to, port, args.size, args.wait, args.ident)
    except Fail as why:
        print(f"FAIL {args.kind} {to} port {port}: {why}", flush=True)
        return 1
    ms = (time.monotonic() - start) * 1000
    print(f"ok {args.kind} {to} port {port}: {detail}", flush=True)
    # The lines ping would print, for the results table (harness/pingout.py).
    print(f"answer from {to}: icmp_seq=1 time={ms:.3f} ms\n1 received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
