"""A private network namespace, made for one configuration and always deleted again.

`with Namespace("tbx-1234-1") as ns:` adds the namespace with its loopback up and deletes
it when the block ends, whatever ends it. Nothing is configured in the machine's own
namespace; the bridge puts its TUN device inside this one.
"""

import subprocess


class NetnsError(Exception):
    """The namespace could not be made."""


class Namespace:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        made = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if made.returncode:
            raise NetnsError(f"cannot make network namespace {self.name}: {made.stderr.strip()}")
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=False)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        return False

    def argv(self, *args) -> list:
        """`args` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]
