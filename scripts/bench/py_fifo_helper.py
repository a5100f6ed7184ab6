#!/usr/bin/env python3
"""A minimal TUN-to-FIFO helper written the obvious way: the published design.

This is the comparison point for tunbridge in scripts/bench.sh, not part of the
product. It speaks the same protocol (one command line in, one answer line out)
so the same agent runs against it unchanged, and it is built the way the
article's helper was: a blocking open() of the answer FIFO per answer, os.read()
of the TUN device only when READ comes in (with a select() timeout), one process,
one thread, no queue of its own (packets wait in the kernel's TUN queue). One
concession to the client, which makes this helper faster, not slower: the
command FIFO is opened once (see serve()).

Run as root inside a network namespace (Python 3 standard library only):

    ip netns exec NS python3 scripts/bench/py_fifo_helper.py \
        --tun tunpy --address 192.0.2.1/24 --cmd-fifo /tmp/x/cmd --resp-fifo /tmp/x/resp
"""

import argparse
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name, address, mtu):
    """Creates the TUN device, gives it the address, and brings it up with `ip`."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass
    subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "mtu", str(mtu), "up"], check=True)
    return fd


def make_fifo(path):
    """Creates a fresh FIFO at path, replacing an old FIFO."""
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path, 0o600)


def answer(resp_fifo, line):
    """Blocking open of the answer FIFO (waits for the reader), one line, close."""
    with open(resp_fifo, "w") as f:
        f.write(line + "\n")


def serve(tun, cmd_fifo, resp_fifo, read_timeout):
    """Reads one command line at a time, forever.

    The command FIFO is opened once, read-write (the usual idiom for a FIFO
    server), so a reader is always there: tunbridge's client opens it
    non-blocking and gives up at once (ENXIO) when nobody reads it. A blocking
    open() per command races with such a client: its line can land between two
    opens, and the next open() then waits for a writer that never comes.
    """
    cmd = os.fdopen(os.open(cmd_fifo, os.O_RDWR), "r")
    while True:
        line = cmd.readline().strip()
        if line == "READ":
            ready, _, _ = select.select([tun], [], [], read_timeout)
            answer(resp_fifo, os.read(tun, 65536).hex() if ready else "TIMEOUT")
        elif line.startswith("WRITE "):
            try:
                os.write(tun, bytes.fromhex(line[6:]))
                answer(resp_fifo, "OK")
            except (ValueError, OSError) as e:
                answer(resp_fifo, f"ERR {e}")
        elif line:
            answer(resp_fifo, "ERR unknown command")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tun", default="tunpy")
    p.add_argument("--address", default="192.0.2.1/24")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--cmd-fifo", default="/tmp/tun_cmd")
    p.add_argument("--resp-fifo", default="/tmp/tun_resp")
    p.add_argument("--read-timeout", type=float, default=30.0)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tun = open_tun(args.tun, args.address, args.mtu)
    make_fifo(args.cmd_fifo)
    make_fifo(args.resp_fifo)
    print(f"py_fifo_helper ready on {args.tun}", file=sys.stderr, flush=True)
    try:
        serve(tun, args.cmd_fifo, args.resp_fifo, args.read_timeout)
    except KeyboardInterrupt:
        pass
    finally:
        for path in (args.cmd_fifo, args.resp_fifo):
            try:
                os.unlink(path)
            except OSError:
                pass


if __name__ == "__main__":
    main()
