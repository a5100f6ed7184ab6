"""harness/stats.py: medians, percentiles and the bootstrap interval of the median."""

import unittest

from harness import stats


class Stats(unittest.TestCase):
    def test_median_and_percentile(self):
        self.assertEqual(stats.median([3, 1, 2, None]), 2)
        self.assertIsNone(stats.median([]))
        self.assertEqual(stats.percentile([1, 2, 3, 4, 5], 50), 3)
        self.assertAlmostEqual(stats.percentile([10, 20, 30, 40], 90), 37.0)
        self.assertIsNone(stats.percentile([], 90))
        self.assertEqual(stats.nearest_rank(list(range(10, 0, -1)), 90), 9)

    def test_bootstrap_interval_holds_the_median_and_is_reproducible(self):
        values = [40.1, 41.9, 42.6, 39.0, 44.4, 43.2, 40.8, 41.0, 45.5, 38.7]
        low, high = stats.bootstrap_median(values)
        self.assertLessEqual(low, stats.median(values))
        self.assertGreaterEqual(high, stats.median(values))
        self.assertGreaterEqual(low, min(values))
        self.assertLessEqual(high, max(values))
        self.assertEqual((low, high), stats.bootstrap_median(values))

    def test_more_data_narrows_the_interval(self):
        few = [10, 20, 30, 40, 50]
        many = few * 20
        lo1, hi1 = stats.bootstrap_median(few)
        lo2, hi2 = stats.bootstrap_median(many)
        self.assertLess(hi2 - lo2, hi1 - lo1)

    def test_edge_cases(self):
        self.assertIsNone(stats.bootstrap_median([]))
        self.assertEqual(stats.bootstrap_median([7.0]), (7.0, 7.0))
        self.assertEqual(stats.bootstrap_median([5.0, 5.0, 5.0]), (5.0, 5.0))


if __name__ == "__main__":
    unittest.main()
