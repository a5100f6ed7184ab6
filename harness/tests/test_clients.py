"""harness/clients.py and `--client PATH`: a user's own client checked, its version read and
judged against the supported range; every run in the default permission mode."""

import contextlib
import io
import os
import stat
import tempfile
import unittest
from unittest import mock

from harness import cli, clients


def fake_client(folder: str, says: str, status: int = 0, name: str = "claude") -> str:
    """An executable that prints `says` for `--version` and exits with `status`."""
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nprintf '%s\\n' '{says}'\nexit {status}\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class Versions(unittest.TestCase):
    def test_the_version_as_claude_prints_it(self):
        self.assertEqual(clients.parse_version("2.1.332 (Claude Code)"), (2, 1, 332))
        self.assertEqual(clients.parse_version("1.0.9\n"), (1, 0, 9))
        self.assertIsNone(clients.parse_version("Claude Code"))
        self.assertIsNone(clients.parse_version(""))

    def test_the_range_runs_from_the_oldest_to_the_pin(self):
        self.assertTrue(clients.in_range(clients.OLDEST))
        self.assertTrue(clients.in_range(clients.pinned()))
        self.assertFalse(clients.in_range("2.1.196"))
        newer = clients.parse_version(clients.pinned())
        self.assertFalse(clients.in_range(f"{newer[0]}.{newer[1]}.{newer[2] + 1}"))
        self.assertFalse(clients.in_range("nonsense"))
        self.assertLessEqual(clients.parse_version(clients.OLDEST), clients.parse_version(clients.pinned()))


class Probe(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def test_a_client_in_range_has_no_warning(self):
        c = clients.probe(fake_client(self.dir.name, f"{clients.OLDEST} (Claude Code)"), "--client")
        self.assertEqual((c.version, c.source), (clients.OLDEST, "--client"))
        self.assertIsNone(c.warning())
        record = c.as_dict()
        self.assertEqual((record["supported"], record["permission_mode"]), (True, "default"))
        self.assertEqual(record["supported_range"], f"{clients.OLDEST} to {clients.pinned()}")

    def test_a_client_outside_the_range_gets_one_line_and_still_runs(self):
        c = clients.probe(fake_client(self.dir.name, "2.0.5 (Claude Code)"), "--client")
        warning = c.warning()
        self.assertIn("Claude Code 2.0.5", warning)
        self.assertIn(f"{clients.OLDEST} to {clients.pinned()}", warning)
        self.assertNotIn("\n", warning)
        self.assertFalse(c.as_dict()["supported"])

    def test_what_is_not_a_client_is_one_line(self):
        missing = os.path.join(self.dir.name, "nothing-here")
        plain = os.path.join(self.dir.name, "plain")
        with open(plain, "w") as f:
            f.write("not a program\n")
        for path, text in ((missing, "no such file"), (plain, "not an executable file"),
                           (self.dir.name, "not an executable file"),
                           (fake_client(self.dir.name, "usage: cat", name="cat"), "not a Claude Code version"),
                           (fake_client(self.dir.name, "2.1.300", status=3, name="broken"), "exit 3")):
            with self.assertRaises(clients.ClientError) as e:
                clients.probe(path, "--client")
            self.assertIn(text, str(e.exception))
            self.assertIn(f"--client {path}", str(e.exception))
            self.assertNotIn("\n", str(e.exception))


class Flag(unittest.TestCase):
    def test_client_is_made_absolute_from_the_repository_and_refused_for_native(self):
        opts, _ = cli.parse_run(["--agent", "dry-run", "--client", "bin/claude", "--out", "/tmp/unused"])
        self.assertTrue(os.path.isabs(opts.client) and opts.client.endswith("bin/claude"))
        with self.assertRaises(cli.ConfigError):
            cli.parse_run(["--agent", "native", "--client", "/bin/true", "--out", "/tmp/unused"])

    def test_a_bad_client_stops_the_run_before_anything_starts(self):
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(err):
            status = cli.main(["run", "--agent", "dry-run", "--client", os.path.join(d, "claude"),
                               "--out", os.path.join(d, "out")])
            self.assertFalse(os.path.exists(os.path.join(d, "out")))
        self.assertEqual(status, 2)
        self.assertRegex(err.getvalue(), r"^harness: --client \S+: no such file\n$")

    def test_a_client_outside_the_range_is_warned_about_once(self):
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(err), \
                mock.patch("harness.matrix.run", return_value=0) as run, mock.patch("os.geteuid", return_value=0):
            path = fake_client(d, "2.0.5 (Claude Code)")
            cli.main(["run", "--agent", "dry-run", "--client", path, "--out", os.path.join(d, "out")])
        run.assert_called_once()
        warnings = [line for line in err.getvalue().splitlines() if "warning" in line]
        self.assertEqual(len(warnings), 1, err.getvalue())
        self.assertIn("Claude Code 2.0.5", warnings[0])


if __name__ == "__main__":
    unittest.main()
