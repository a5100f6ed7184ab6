"""harness/pingout.py: ping's output (and traffic.py's) read in one place."""

import unittest

from harness import pingout

ONE = """PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=1963 ms

--- 192.0.2.2 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 1963.112/1963.112/1963.112/0.000 ms
"""

CONTINUOUS = """PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.
[1764000000.123456] 64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=95.2 ms
[1764000001.123456] no answer yet for icmp_seq=2
[1764000002.123456] 64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=88.0 ms
[1764000003.123456] 64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=2088 ms

--- 192.0.2.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 3004ms
"""

SMALL = """PING 192.0.2.2 (192.0.2.2) 8(36) bytes of data.
16 bytes from 192.0.2.2: icmp_seq=1 ttl=64

--- 192.0.2.2 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
"""

TRAFFIC = """ok udp-echo 192.0.2.2 port 7: 19 bytes echoed
answer from 192.0.2.2: icmp_seq=1 time=12.500 ms
1 received
"""

LOST = """PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.

--- 192.0.2.2 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss, time 0ms
"""


class Parse(unittest.TestCase):
    def test_one_reply(self):
        out = pingout.parse(ONE)
        self.assertEqual(out.rtt(1), 1963.0)
        self.assertTrue(out.got(1))
        self.assertEqual((out.transmitted, out.received), (1, 1))

    def test_timestamps_out_of_order_replies_and_gaps(self):
        out = pingout.parse(CONTINUOUS)
        self.assertEqual(out.replies, {1: 95.2, 3: 88.0, 2: 2088.0})
        self.assertEqual(out.rtts(), [95.2, 2088.0, 88.0])
        self.assertFalse(out.got(4))
        self.assertEqual((out.transmitted, out.received), (4, 3))

    def test_a_reply_too_small_for_a_time_is_counted_without_one(self):
        out = pingout.parse(SMALL)
        self.assertTrue(out.got(1))
        self.assertIsNone(out.rtt(1))
        self.assertEqual(out.rtts(), [])

    def test_traffic_answers_read_like_ping(self):
        out = pingout.parse(TRAFFIC)
        self.assertEqual(out.rtt(1), 12.5)
        self.assertEqual(out.received, 1)

    def test_lost_and_failed_and_missing(self):
        self.assertFalse(pingout.parse(LOST).got(1))
        self.assertEqual(pingout.parse(LOST).transmitted, 1)
        self.assertFalse(pingout.parse("FAIL tcp-syn 192.0.2.2 port 9: no reset within 60 s\n").got(1))
        self.assertEqual(pingout.read("/nonexistent/ping-1.txt").replies, {})


if __name__ == "__main__":
    unittest.main()
