"""The bridge for one configuration: `tunbridge serve` in its namespace, with FIFOs of its own.

`with Bridge(binary, ns, out, work, max_age) as bridge:` starts the daemon with a record
(out/records.jsonl), a capture (out/capture.pcap) and its log (out/bridge.log), its FIFOs
and channel socket in the configuration's private `work` directory, and waits until it
serves; on leaving the block it stops it (SIGTERM: the in-flight requests are recorded,
FIFOs and device removed), whatever ends the block. `bridge.env()` is what an agent needs
to reach exactly this bridge: the FIFO paths, and `tunbridge` first on PATH.
"""

import os
import subprocess
import time

from harness import procs


class BridgeError(Exception):
    """The bridge did not start; the message carries its log."""


def put_on_path(binary: str, bindir: str) -> dict:
    """Links `binary` as `bindir/tunbridge` and returns the environment that runs it.

    The prompts run plain `tunbridge`. When Claude Code could not snapshot the user's shell
    it runs each command as `bash -c -l`, whose /etc/profile sets PATH anew; BASH_ENV, read
    after the profile, puts the directory back in front (docs/HARNESS.md).
    """
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "tunbridge")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.realpath(binary), link)
    path_sh = os.path.join(bindir, "path.sh")
    with open(path_sh, "w") as f:
        f.write(f'case ":$PATH:" in *":{bindir}:"*) ;; *) PATH={bindir}:$PATH ;; esac\n')
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "BASH_ENV": path_sh}


class Bridge:
    def __init__(self, binary: str, ns, out: str, work: str, max_age: int, group: procs.Procs,
                 cmd: str = None, resp: str = None, extra=()):
        self.binary, self.ns, self.out, self.work, self.max_age = binary, ns, out, work, max_age
        self.cmd = cmd or os.path.join(work, "tun_cmd")
        self.resp = resp or os.path.join(work, "tun_resp")
        self.procs, self.extra = group, list(extra)
        self.proc = None

    def __enter__(self):
        argv = [self.binary, "serve", "--netns", self.ns.name, "--max-age", str(self.max_age),
                "--record", os.path.join(self.out, "records.jsonl"),
                "--pcap", os.path.join(self.out, "capture.pcap"),
                "--cmd-fifo", self.cmd, "--resp-fifo", self.resp, *self.extra]
        self.log = os.path.join(self.out, "bridge.log")
        with open(self.log, "w") as log:
            # A session of its own: a terminal's Ctrl-C reaches the harness, which stops the
            # agents first and the bridge after them, not the bridge under a running agent.
            self.proc = self.procs.start(argv, group=True, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.resp):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BridgeError("the bridge did not start:\n" + self.log_text())
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, grace=5.0)

    def log_text(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def env(self) -> dict:
        """The environment that points `tunbridge read`/`write` (and the native agent) here."""
        env = put_on_path(self.binary, os.path.join(self.work, "bin"))
        env.update(TUNBRIDGE_CMD_FIFO=self.cmd, TUNBRIDGE_RESP_FIFO=self.resp)
        return env
