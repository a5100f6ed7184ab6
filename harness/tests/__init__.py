"""Unit tests of the harness package: no root, no network, no client (python3 -m unittest)."""
