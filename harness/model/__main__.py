"""`python3 -m harness.model`: the scripted model server (harness/model/server.py)."""

from harness.model.server import main

main()
