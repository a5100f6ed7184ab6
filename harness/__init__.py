"""tunbridge's harness: runs models as IP stacks against the bridge and compares them.

`python3 -m harness` (from the repository root; `scripts/experiment.sh` installs, builds,
re-runs with sudo and hands over to it) runs one configuration or a matrix of them, the
scenario suite, the bridge benchmark, and compares earlier results. docs/RUNNER.md is the
user's account; each module opens with its role.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a flag it refuses is one line (not the whole usage, then why)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
        sys.exit(2)

