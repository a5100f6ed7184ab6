"""Child processes: started so they can always be stopped, run as the user who asked.

Every process the runner starts goes through `Procs`, a context manager that stops what is
still running when it closes, however it closes (the run ended, an exception, Ctrl-C): a
TERM to the process group of each child started in a group of its own, a KILL after a grace
period. The runner runs as root (the TUN device needs it); the agent runs as the user who
asked (`SUDO_USER`), as it did before the package. When there is no such user (root itself
ran it, as CI does) an agent that must not be root runs as `nobody` instead (`agent_user`):
`tunbridge mcp` refuses root, so the MCP harnesses' client does.
"""

import os
import pwd
import signal
import subprocess
import time


def run_user():
    """(name, uid, gid, groups) of the user the agent runs as: the sudo user (SUDO_UID and
    SUDO_GID, as the bridge reads them when it drops root to that user), or ourselves."""
    try:
        uid, gid = int(os.environ["SUDO_UID"]), int(os.environ["SUDO_GID"])
    except (KeyError, ValueError):
        uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid), uid, gid, (gid,)
    return name, uid, gid, tuple(os.getgrouplist(name, gid))


NOBODY = "nobody"


def agent_user(unprivileged: bool):
    """The user an agent runs as: the run user; but `nobody` when that is root and the agent
    must not be (`unprivileged`)."""
    user = run_user()
    if not unprivileged or user[1] != 0:
        return user
    pw = pwd.getpwnam(NOBODY)
    return NOBODY, pw.pw_uid, pw.pw_gid, (pw.pw_gid,)


def unreachable(paths, user):
    """The first of `paths` that `user` (as `run_user` gives it) cannot read and enter (a
    folder) or run (a file), or a folder above it that it cannot enter; None when all can be."""
    _, uid, _, groups = user

    def allows(path, bits):
        st = os.stat(path)
        if uid == 0:
            return True
        mode = st.st_mode >> 6 if st.st_uid == uid else st.st_mode >> 3 if st.st_gid in groups else st.st_mode
        return mode & bits == bits

    for path in paths:
        real = os.path.realpath(path)
        folders = []
        parent = os.path.dirname(real)
        while parent != os.path.dirname(parent):
            folders.append(parent)
            parent = os.path.dirname(parent)
        try:
            for folder in reversed(folders):
                if not allows(folder, 1):
                    return folder
            if not allows(real, 5):
                return real
        except OSError:
            return real
    return None


def chown_tree(path: str) -> None:
    """Gives `path` and everything under it to the run user (the files are theirs, not root's)."""
    _, uid, gid, _ = run_user()
    if uid == 0 or not os.path.exists(path):
        return
    for top, dirs, files in os.walk(path):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            try:
                os.lchown(name, uid, gid)
            except OSError:
                pass


def makedirs(path: str) -> None:
    """os.makedirs(path, exist_ok=True), and the folders it made are the run user's: root
    leaves no folder in their checkout that they cannot write to or remove (`out/` of
    `out/<run>`)."""
    made, top = [], os.path.abspath(path)
    while not os.path.isdir(top):
        made.append(top)
        top = os.path.dirname(top)
    os.makedirs(path, exist_ok=True)
    _, uid, gid, _ = run_user()
    if uid == os.getuid():
        return
    for name in made:
        try:
            os.lchown(name, uid, gid)
        except OSError:
            pass


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """TERM (to its group when it leads one), then KILL after `grace` seconds; reaps it."""
    if proc.poll() is not None:
        return
    group = getattr(proc, "own_group", False)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Procs:
    """The processes of one configuration; all stopped, newest first, when it closes."""

    def __init__(self):
        self.live = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False

    def start(self, argv, *, as_user=False, group=False, **kw) -> subprocess.Popen:
        """Popen(argv, **kw), tracked; `as_user` runs it as the run user (True) or as the user
        given (as `run_user` gives one); `group` in a process group of its own (its children
        are then stopped with it)."""
        if as_user:
            _, uid, gid, groups = as_user if isinstance(as_user, tuple) else run_user()
            if uid != os.getuid():
                kw.update(user=uid, group=gid, extra_groups=groups)
        proc = subprocess.Popen(argv, start_new_session=group, **kw)
        proc.own_group = group
        self.live.append(proc)
        return proc

    def stop(self, proc, grace: float = 3.0) -> None:
        stop(proc, grace)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.live):
            stop(proc, grace=2.0)
        self.live = []


def descendants(pid: int) -> list:
    """(pid, argv) of every live descendant of `pid`, from /proc."""
    parent, argv = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        argv[int(entry)] = [a.decode(errors="replace") for a in args if a]
    found = []
    for p in parent:
        q = p
        while q in parent and q != pid and q > 1:
            q = parent[q]
        if q == pid and p != pid:
            found.append((p, argv[p]))
    return found


def waits_in_read(pid: int) -> bool:
    """True while a descendant of `pid` is `tunbridge read` or `tunbridge write ... --next`:
    the agent waits for a packet."""
    return any(len(a) >= 2 and os.path.basename(a[0]) == "tunbridge"
               and (a[1:] == ["read"] or (a[1] == "write" and "--next" in a[2:]))
               for _, a in descendants(pid))


def tree_cpu(pid: int):
    """CPU seconds (user and system) of `pid`, the children it has waited for, and its live
    descendants, from /proc; None once it has gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return None
            continue
        total += sum(int(x) for x in fields[11:15]) / tick   # utime, stime, cutime, cstime
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def wait_until_reading(proc, say=None, stop_event=None, limit=None, reading=None, trouble=None) -> bool:
    """Waits until `proc` waits in READ (True: `reading()`, by default a `tunbridge read`
    process under it), or exits, is stopped, `trouble()` says something, or `limit` seconds
    pass (False), saying so every 2 s."""
    start = time.monotonic()
    next_note = 2.0
    reading = reading or (lambda: waits_in_read(proc.pid))
    while not reading():
        if proc.poll() is not None or (stop_event is not None and stop_event.is_set()):
            return False
        if trouble is not None and trouble():
            return False
        if limit is not None and time.monotonic() - start > limit:
            return False
        if say and time.monotonic() - start > next_note:
            say(f"waiting for the agent to wait in READ ({next_note:.0f} s)")
            next_note += 2
        time.sleep(0.1)
    return True
