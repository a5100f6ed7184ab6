"""Ping's output, read in one place: the replies by sequence number, their times, the totals.

iputils ping prints one line per reply (`64 bytes from 192.0.2.2: icmp_seq=1 ttl=64
time=1963 ms`; with `-D` a `[<unix time>]` in front; under 16 data bytes no `time=`) and a
summary (`3 packets transmitted, 3 received`). harness/traffic.py prints a line in the same
form for UDP and TCP answers (`answer from ADDR: icmp_seq=1 time=... ms`), so one reader
serves both.
"""

import re
from dataclasses import dataclass, field

REPLY = re.compile(r"(?:bytes|answer) from \S+: icmp_seq=(\d+)([^\n]*)")
TIME = re.compile(r"time=([0-9.]+) ms")
TOTALS = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass
class PingOutput:
    """What one ping run reported."""

    replies: dict = field(default_factory=dict)  # icmp_seq -> RTT in ms (None: counted, no time)
    transmitted: int = 0
    received: int = 0

    def rtt(self, seq: int = 1):
        """The RTT of reply `seq` in ms, or None (no reply, or one too small to carry a time)."""
        return self.replies.get(seq)

    def got(self, seq: int = 1) -> bool:
        """Whether ping counted reply `seq`."""
        return seq in self.replies

    def rtts(self) -> list:
        """Every reply's RTT in ms, in sequence order (replies without a time left out)."""
        return [t for _, t in sorted(self.replies.items()) if t is not None]


def parse(text: str) -> PingOutput:
    """Reads ping's (or traffic.py's) output."""
    out = PingOutput()
    for m in REPLY.finditer(text):
        t = TIME.search(m.group(2))
        out.replies.setdefault(int(m.group(1)), float(t.group(1)) if t else None)
    m = TOTALS.search(text)
    if m:
        out.transmitted, out.received = int(m.group(1)), int(m.group(2))
    elif out.replies:
        out.transmitted = out.received = len(out.replies)
    return out


def read(path: str) -> PingOutput:
    """Reads a file of ping output; a missing file reports nothing."""
    try:
        with open(path) as f:
            return parse(f.read())
    except OSError:
        return PingOutput()
