"""harness/flood.py: the samples and ping output of a flood run, summarised per phase."""

import unittest

from harness import flood

TSV = """t\tphase\trss_kib\tcpu_s\tflood_bytes
100.0\tbefore\t4096\t1.00\t0
100.5\tbefore\t4100\t1.01\t0
101.0\tflood\t4200\t1.01\t10000
102.0\tflood\t8192\t1.51\t20000
103.0\tflood\t6144\t2.01\t30000
104.0\tafter\t4200\t2.01\t30000
104.5\tafter\t4200\t2.02\t30000
"""

PING = """PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.
[100.20] 64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.20 ms
[101.50] 64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=10.0 ms
[102.50] 64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=30.0 ms
[102.70] 64 bytes from 192.0.2.2: icmp_seq=4 ttl=64 time=20.0 ms
[104.20] 64 bytes from 192.0.2.2: icmp_seq=5 ttl=64 time=0.30 ms
"""


class Summary(unittest.TestCase):
    def test_each_phase_gets_its_samples_and_its_pings(self):
        s = flood.summarise(TSV, PING)
        self.assertEqual(s["flood_bytes"], 30000)
        f = s["phases"]["flood"]
        self.assertEqual(f["rss_max_mib"], 8.0)
        self.assertEqual(f["rss_end_mib"], 6.0)
        self.assertAlmostEqual(f["cpu_percent"], 50.0)
        self.assertEqual((f["rtt_median_ms"], f["rtt_p90_ms"], f["replies"]), (20.0, 30.0, 3))
        self.assertEqual(s["phases"]["before"]["replies"], 1)
        self.assertEqual(s["phases"]["after"]["rtt_median_ms"], 0.30)
        self.assertIn("ping median 20.000 ms, p90 30.000 ms (3 replies)", flood.text("b", s))

    def test_a_phase_without_replies_says_so(self):
        s = flood.summarise(TSV, "")
        self.assertIsNone(s["phases"]["flood"]["rtt_median_ms"])
        self.assertIn("no replies", flood.text("b", s))


if __name__ == "__main__":
    unittest.main()
