//! Safe FIFOs and privileges: the daemon refuses paths that are not its own FIFOs and
//! leaves them as they were, and with `--user` it drops root after setup and keeps working;
//! `tunbridge mcp` never runs as root.
//!
//! Needs root (namespaces, TUN, chown, setuid); each test makes its own network namespace
//! (see `common`). The unprivileged user is `nobody`.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// uid and gid of `nobody`.
const NOBODY: u32 = 65534;

/// Runs `tunbridge serve` on these FIFO paths, expecting it to give up at once.
fn serve_fails(ns: &Netns, cmd: &Path, resp: &Path) -> Output {
    let out = Command::new(BIN)
        .args(["serve", "--netns", &ns.name, "--cmd-fifo"])
        .arg(cmd)
        .arg("--resp-fifo")
        .arg(resp)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run tunbridge serve");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Puts something at a path.
type Setup<'a> = Box<dyn Fn(&Path) + 'a>;

/// What a path is, without following it: kind, inode, owner, mode, and content or target.
fn snapshot(path: &Path) -> (String, u64, u32, u32, Vec<u8>) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let kind = meta.file_type();
    let content = if kind.is_symlink() {
        std::fs::read_link(path)
            .unwrap()
            .into_os_string()
            .into_encoded_bytes()
    } else if kind.is_file() {
        std::fs::read(path).unwrap()
    } else if kind.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.join("/").into_bytes()
    } else {
        Vec::new()
    };
    (
        format!("{kind:?}"),
        meta.ino(),
        meta.uid(),
        meta.mode(),
        content,
    )
}

#[test]
#[ignore = "needs root"]
fn refuses_paths_that_are_not_its_own_fifos_and_leaves_them_alone() {
    let (ns, dir) = root_netns("refuse");
    let precious = dir.join("precious");
    std::fs::write(&precious, b"keep me\n").unwrap();
    let setups: Vec<(&str, &str, Setup<'_>)> = vec![
        (
            "symlink to a file",
            "a symbolic link",
            Box::new(|p: &Path| std::os::unix::fs::symlink(dir.join("precious"), p).unwrap()),
        ),
        (
            "dangling symlink",
            "a symbolic link",
            Box::new(|p: &Path| std::os::unix::fs::symlink(dir.join("nowhere"), p).unwrap()),
        ),
        (
            "regular file",
            "a regular file",
            Box::new(|p: &Path| std::fs::write(p, b"not a fifo\n").unwrap()),
        ),
        (
            "directory",
            "a directory",
            Box::new(|p: &Path| {
                std::fs::create_dir(p).unwrap();
                std::fs::write(p.join("inside"), b"x").unwrap();
            }),
        ),
        (
            "FIFO of another user",
            "a FIFO owned by another user (uid 65534)",
            Box::new(|p: &Path| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
                std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
            }),
        ),
    ];
    for (name, what, setup) in &setups {
        // Each in turn as the command FIFO and as the answer FIFO.
        for bad_is_cmd in [true, false] {
            let (good, bad): (PathBuf, PathBuf) = (dir.join("good"), dir.join("bad"));
            setup(&bad);
            let before = snapshot(&bad);
            let (cmd, resp) = if bad_is_cmd {
                (&bad, &good)
            } else {
                (&good, &bad)
            };
            let out = serve_fails(&ns, cmd, resp);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}: started anyway");
            let want = format!("refusing to use {}: it exists and is {what}", bad.display());
            let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&want)).collect();
            assert_eq!(
                lines.len(),
                1,
                "{name}: no one-line message {want:?} in\n{stderr}"
            );
            assert!(lines[0].contains("ERROR"), "{name}: {}", lines[0]);
            assert_eq!(snapshot(&bad), before, "{name} was changed");
            assert_eq!(std::fs::read(&precious).unwrap(), b"keep me\n");
            assert!(
                !dir.join("nowhere").exists(),
                "{name}: a symlink was followed"
            );
            assert!(!good.exists(), "{name}: our own FIFO was left behind");
            assert!(!ns.has_link("tun0"), "{name}: the device was left behind");
            if std::fs::symlink_metadata(&bad).unwrap().is_dir() {
                std::fs::remove_dir_all(&bad).unwrap();
            } else {
                std::fs::remove_file(&bad).unwrap();
            }
        }
    }
}

/// The `Uid:`, `Gid:` and `Groups:` lines and effective capabilities of a process.
fn credentials(pid: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line[key.len()..]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let cap = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    (
        ids("Uid:"),
        ids("Gid:"),
        ids("Groups:"),
        cap[7..].trim().to_string(),
    )
}

/// A FIFO directory the unprivileged user can reach and remove its own files from.
fn shared_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

#[test]
#[ignore = "needs root"]
fn the_mcp_server_refuses_to_run_as_root() {
    require_root();
    let out = Command::new(BIN)
        .arg("mcp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on the protocol stream");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never as root"), "{err}");
}

#[test]
#[ignore = "needs root"]
fn drops_root_after_setup_and_keeps_answering() {
    require_root();
    let ns = Netns::new("nobody");
    let dir = shared_dir("nobody");
    let mut bridge = Bridge::start(&ns, &dir, &["--user", "nobody"]);
    bridge.wait_log("dropped root", std::time::Duration::from_secs(1));
    let (uids, gids, groups, cap) = credentials(bridge.child().id());
    assert_eq!(uids, [NOBODY; 4], "Uid line");
    assert_eq!(gids, [NOBODY; 4], "Gid line");
    assert_eq!(groups, [NOBODY], "supplementary groups");
    assert_eq!(cap, "0000000000000000", "effective capabilities");
    for path in [&bridge.cmd, &bridge.resp] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOBODY),
            "{}",
            path.display()
        );
        assert_eq!(meta.mode() & 0o7777, 0o600, "{}", path.display());
    }
    for _ in 0..3 {
        ping_answered(&ns, &bridge);
    }
    assert_stops_cleanly(&mut bridge, &ns, nix::sys::signal::Signal::SIGTERM);
}

#[test]
#[ignore = "needs root"]
fn a_group_gets_mode_0660() {
    require_root();
    let users = nix::unistd::Group::from_name("users")
        .unwrap()
        .expect("group users")
        .gid;
    let ns = Netns::new("group");
    let dir = shared_dir("group");
    let bridge = Bridge::start(
        &ns,
        &dir,
        &["--user", "nobody", "--group", &users.to_string()],
    );
    let socket = tunbridge::ipc::channel::socket_path(&bridge.cmd);
    for path in [&bridge.cmd, &bridge.resp, &socket] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, users.as_raw()));
        assert_eq!(meta.mode() & 0o7777, 0o660, "{}", path.display());
    }
    ping_answered(&ns, &bridge);
}

#[test]
#[ignore = "needs root"]
fn a_stale_fifo_of_the_user_is_replaced() {
    require_root();
    let ns = Netns::new("stale");
    let dir = shared_dir("stale");
    // As a crashed `--user nobody` daemon leaves them.
    for name in ["cmd", "resp"] {
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // A second name keeps the old inode alive, so the new FIFO cannot reuse its number.
    std::fs::hard_link(dir.join("cmd"), dir.join("cmd.old")).unwrap();
    let old = std::fs::symlink_metadata(dir.join("cmd")).unwrap().ino();
    let bridge = Bridge::start(&ns, &dir, &["--user", "nobody"]);
    assert_ne!(std::fs::symlink_metadata(&bridge.cmd).unwrap().ino(), old);
    ping_answered(&ns, &bridge);
}

#[test]
#[ignore = "needs root"]
fn in_a_directory_the_user_cannot_write_leftovers_are_reported_and_replaced() {
    require_root();
    let ns = Netns::new("ro");
    // Root's, mode 0755: nobody can use the FIFOs in it but not unlink them.
    let dir = TempDir::new("ro");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut first = Bridge::start(&ns, &dir, &["--user", "nobody"]);
    ping_answered(&ns, &first);
    assert_eq!(
        first.stop_with(nix::sys::signal::Signal::SIGTERM).code(),
        Some(0)
    );
    assert_eq!(
        first.count_log("cannot remove the FIFO or socket"),
        3,
        "leftovers are reported: both FIFOs and the channel's socket"
    );
    let socket = tunbridge::ipc::channel::socket_path(&first.cmd);
    assert!(first.cmd.exists() && first.resp.exists() && socket.exists());
    // The next start as the same user takes them over.
    let second = Bridge::start(&ns, &dir, &["--user", "nobody"]);
    ping_answered(&ns, &second);
}

/// Runs `tunbridge serve` with these extra flags, expecting it to give up within 10 s;
/// a daemon that starts anyway is stopped, so the test fails instead of hanging.
fn serve_briefly(ns: &Netns, dir: &TempDir, extra: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(BIN)
        .args(["serve", "--netns", &ns.name, "--cmd-fifo"])
        .arg(dir.join("cmd"))
        .arg("--resp-fifo")
        .arg(dir.join("resp"))
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tunbridge serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "needs root"]
fn record_and_capture_paths_that_are_symlinks_are_not_followed() {
    let (ns, dir) = root_netns("journal");
    let precious = dir.join("precious");
    for flag in ["--pcap", "--record"] {
        std::fs::write(&precious, b"keep me\n").unwrap();
        // As another local user could plant it in /tmp before the daemon starts.
        let link = dir.join("planted");
        std::os::unix::fs::symlink(&precious, &link).unwrap();
        let out = serve_briefly(&ns, &dir, &[flag.as_ref(), link.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{flag}: started through a symlink\n{stderr}"
        );
        assert!(
            stderr.contains("cannot open the record or capture file"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read(&precious).unwrap(),
            b"keep me\n",
            "{flag} followed the link"
        );
        assert!(!dir.join("cmd").exists() && !dir.join("resp").exists());
        std::fs::remove_file(&link).unwrap();
    }
}
