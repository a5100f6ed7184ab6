"""tunbridge's harness: runs models as IP stacks against the bridge and compares them.

`python3 -m harness` (from the repository root; `scripts/experiment.sh` installs, builds,
re-runs with sudo and hands over to it) runs one configuration or a matrix of them, the
scenario suite, the bridge benchmark, and compares earlier results. docs/RUNNER.md is the
user's account; each module opens with its role.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

