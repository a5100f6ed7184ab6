//! The README's commands as a user with sudo, where CI has only root: experiment.sh, test.sh
//! and bridge.sh run as the user `nobody` in a checkout of their own, with a stand-in `sudo`
//! on PATH that records what it is asked to run instead of running it; the test then runs
//! that as root the way sudo would (SUDO_USER and its kin set, only the variables
//! `--preserve-env` names kept, the secure PATH). What the user then finds in their checkout
//! must all be theirs; and `sudo scripts/X.sh` in a fresh checkout refuses to build as root
//! there, in one line. Needs root.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian's sudoers `secure_path`.
const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Logs every call to CALLS; `-v` succeeds (the password typed) and `-n` fails (none cached
/// yet); anything else is recorded (its arguments, then its environment, NUL-separated) and
/// not run.
const SUDO: &str = r#"#!/bin/sh
echo "sudo $*" >> "$TB_CALLS"
case $1 in -v) exit 0 ;; -n) exit 1 ;; esac
printf '%s\0' "$@" > "$TB_SUDO.argv"
env -0 > "$TB_SUDO.env"
"#;

/// A stand-in that only logs its call (cargo, npm: what the user's side would build or install).
const LOGGED: &str = "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$TB_CALLS\"\n";

/// The password was asked for before anything else ran: sudo's first two calls.
fn asked_first(calls: &[String]) {
    assert!(
        calls.len() >= 2 && calls[..2] == ["sudo -n true", "sudo -v"],
        "sudo asks for the password first: {calls:?}"
    );
}

struct User {
    uid: u32,
    gid: u32,
}

fn nobody() -> User {
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a user nobody");
    User {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A sudo user's world in `dir`: their checkout (this working tree's files, committed to a
/// repository of its own), a HOME, and a folder of stand-ins; all theirs.
struct World {
    checkout: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    calls: PathBuf,
    record: PathBuf,
}

fn world(dir: &common::TempDir, user: &User, stand_ins: &[&str]) -> World {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = World {
        checkout: dir.join("tunbridge"),
        home: dir.join("home"),
        bin: dir.join("bin"),
        calls: dir.join("home/calls"),
        record: dir.join("home/sudo"),
    };
    let listed = run(Command::new("git").current_dir(repo).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let (from, to) = (repo.join(name), w.checkout.join(name));
        // A file deleted in the working tree but not yet in a commit is not copied.
        let Ok(meta) = from.symlink_metadata() else {
            continue;
        };
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let git = |args: &[&str]| {
        run(Command::new("git")
            .current_dir(&w.checkout)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "checkout"]);
    std::fs::create_dir(&w.home).unwrap();
    std::fs::create_dir(&w.bin).unwrap();
    write_exe(&w.bin.join("sudo"), SUDO);
    for name in stand_ins {
        write_exe(&w.bin.join(name), LOGGED);
    }
    let owner = format!("{}:{}", user.uid, user.gid);
    run(Command::new("chown")
        .args(["-R", &owner])
        .arg(&w.checkout)
        .arg(&w.home));
    w
}

impl World {
    /// Runs `script ARGS` in the checkout as `user`, as from their login shell.
    fn as_user(&self, user: &User, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--clear-groups", "env", "-i"])
            .arg(format!(
                "PATH={}:/usr/local/bin:/usr/bin:/bin",
                self.bin.display()
            ))
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("TB_CALLS={}", self.calls.display()))
            .arg(format!("TB_SUDO={}", self.record.display()));
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(self.checkout.join(script))
            .args(args)
            .current_dir(&self.checkout);
        cmd.output().expect("setpriv")
    }

    fn calls(&self) -> Vec<String> {
        let calls = std::fs::read_to_string(&self.calls).unwrap_or_default();
        calls.lines().map(String::from).collect()
    }

    /// What the stand-in sudo was asked to run: its arguments and the caller's environment.
    fn sudo_request(&self) -> (Vec<String>, HashMap<String, String>) {
        let read = |ext: &str| {
            let path = PathBuf::from(format!("{}.{ext}", self.record.display()));
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("sudo was not asked to run anything ({e})"));
            data.split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        };
        let env = read("env")
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        (read("argv"), env)
    }

    /// The recorded request as root would run it after sudo for `user`, with `last` in
    /// place of the command's last word when given.
    fn as_sudo_would(&self, user: &User, last: Option<&[&str]>) -> Command {
        let (mut argv, caller) = self.sudo_request();
        let mut env: HashMap<String, String> = HashMap::from([
            ("PATH".into(), SECURE_PATH.into()),
            ("HOME".into(), "/root".into()),
            ("USER".into(), "root".into()),
            ("LOGNAME".into(), "root".into()),
            ("SUDO_USER".into(), "nobody".into()),
            ("SUDO_UID".into(), user.uid.to_string()),
            ("SUDO_GID".into(), user.gid.to_string()),
        ]);
        if let Some(list) = argv[0].strip_prefix("--preserve-env=") {
            for name in list.split(',') {
                if let Some(value) = caller.get(name) {
                    env.insert(name.into(), value.clone());
                }
            }
            argv.remove(0);
        }
        // `sudo NAME=VALUE... COMMAND`: those are set too.
        while let Some((name, value)) = argv[0].split_once('=').filter(|(n, _)| !n.contains('/')) {
            env.insert(name.into(), value.into());
            argv.remove(0);
        }
        if let Some(last) = last {
            argv.pop();
            argv.extend(last.iter().map(|s| s.to_string()));
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(env)
            .current_dir(&self.checkout);
        cmd
    }

    /// Fails, naming them, if any path in the checkout is not `user`'s.
    fn assert_theirs(&self, user: &User) {
        let foreign = self.not_theirs(user);
        assert!(
            foreign.is_empty(),
            "root left these in the user's checkout:\n{}",
            foreign.join("\n")
        );
    }

    /// Every path in the checkout that is not `user`'s.
    fn not_theirs(&self, user: &User) -> Vec<String> {
        let mut found = Vec::new();
        let mut todo = vec![self.checkout.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = path.symlink_metadata().unwrap();
                if meta.uid() != user.uid || meta.gid() != user.gid {
                    found.push(format!(
                        "{} ({}:{})",
                        path.display(),
                        meta.uid(),
                        meta.gid()
                    ));
                }
                if meta.is_dir() {
                    todo.push(path);
                }
            }
        }
        found
    }
}

#[test]
#[ignore = "needs root"]
fn experiment_as_a_sudo_user_leaves_their_checkout_theirs() {
    common::require_root();
    let user = nobody();
    let dir = common::TempDir::new("sudo-exp");
    let w = world(&dir, &user, &["cargo"]);
    // Built already, as the user would have: the daemon named by TUNBRIDGE, the native agent
    // in their target/.
    let examples = w.checkout.join("target/release/examples");
    std::fs::create_dir_all(&examples).unwrap();
    let agent = Path::new(common::BIN)
        .parent()
        .unwrap()
        .join("examples/native_agent");
    std::fs::copy(&agent, examples.join("native_agent")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (cargo build --release --all-targets builds it; scripts/test.sh does)",
            agent.display()
        )
    });
    let owner = format!("{}:{}", user.uid, user.gid);
    run(Command::new("chown")
        .args(["-R", &owner])
        .arg(w.checkout.join("target")));

    let args = ["--agent", "native", "--count", "1", "--ping-wait", "20"];
    let out = w.as_user(
        &user,
        "scripts/experiment.sh",
        &args,
        &[("TUNBRIDGE", common::BIN)],
    );
    assert!(
        out.status.success(),
        "experiment.sh as the user:\n{}",
        text(&out)
    );
    let run = w.as_sudo_would(&user, None).output().unwrap();
    let said = text(&run);
    assert!(run.status.success(), "the harness as root:\n{said}");
    let results: Vec<_> = std::fs::read_dir(w.checkout.join("out")).unwrap().collect();
    assert_eq!(results.len(), 1, "one run in out/:\n{said}");
    let run_dir = results.into_iter().next().unwrap().unwrap().path();
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("1 valid"), "{summary}");

    // Root made the run's folder and out/ above it, ran Python and git in the checkout:
    // all of it is the user's, and they can remove any of it.
    w.assert_theirs(&user);
    // The password was asked for before anything else, and nothing was built.
    let calls = w.calls();
    asked_first(&calls);
    assert_eq!(
        calls.len(),
        3,
        "sudo, once more, and nothing else: {calls:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn tests_as_a_sudo_user_build_as_them_and_run_as_ci_runs_them() {
    common::require_root();
    let user = nobody();
    let dir = common::TempDir::new("sudo-test");
    let w = world(&dir, &user, &["cargo", "npm"]);

    let out = w.as_user(&user, "scripts/test.sh", &[], &[]);
    let said = text(&out);
    assert!(out.status.success(), "test.sh as the user:\n{said}");
    let calls = w.calls();
    // The password first, then everything that builds, as the user; then sudo, once more.
    asked_first(&calls);
    let ask = said.find("sudo asks for your password now").expect(&said);
    assert!(ask < said.find("==> building").expect(&said), "{said}");
    let last = calls.last().unwrap();
    assert!(last.starts_with("sudo env "), "{calls:?}");
    for build in [
        "cargo build --release --all-targets",
        "cargo test --release --workspace --all-targets --no-run",
    ] {
        assert!(
            calls.iter().any(|c| c.starts_with(build)),
            "{build}: {calls:?}"
        );
    }
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("sudo env")).count(),
        1
    );

    // What the suite would see, as root: the user's toolchain, no bytecode, and nothing of
    // the sudo user's (as in CI), so the harness runs its agents as root in the tests' folders.
    let seen = w.as_sudo_would(&user, Some(&["env"])).output().unwrap();
    let seen = text(&seen);
    let home = w.home.display();
    for want in [
        format!("CARGO_HOME={home}/.cargo"),
        format!("RUSTUP_HOME={home}/.rustup"),
        "PYTHONDONTWRITEBYTECODE=1".to_string(),
        format!("PATH={}:", w.bin.display()),
    ] {
        assert!(
            seen.lines().any(|l| l.starts_with(&want)),
            "{want}:\n{seen}"
        );
    }
    for gone in ["SUDO_USER=", "SUDO_UID=", "SUDO_GID="] {
        assert!(
            !seen.lines().any(|l| l.starts_with(gone)),
            "{gone}:\n{seen}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn bridge_as_a_sudo_user_leaves_its_record_theirs() {
    common::require_root();
    let user = nobody();
    let dir = common::TempDir::new("sudo-bridge");
    let w = world(&dir, &user, &["cargo"]);
    let netns = format!("tbt-sudo-bridge-{}", std::process::id());
    let (cmd, resp) = (dir.join("cmd"), dir.join("resp"));
    let args = [
        "--record",
        "run.jsonl",
        "--pcap=capture.pcap",
        "--cmd-fifo",
        cmd.to_str().unwrap(),
        "--resp-fifo",
        resp.to_str().unwrap(),
    ];
    let env = [("TUNBRIDGE", common::BIN), ("NETNS", &netns)];
    let out = w.as_user(&user, "scripts/bridge.sh", &args, &env);
    assert!(
        out.status.success(),
        "bridge.sh as the user:\n{}",
        text(&out)
    );
    asked_first(&w.calls());

    // As Ctrl-C in its terminal: SIGINT to its process group once the bridge is ready.
    let mut bridge = w
        .as_sudo_would(&user, None)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until(std::time::Duration::from_secs(20), || {
        std::fs::metadata(format!("{}.sock", cmd.display())).is_ok()
    });
    let group = nix::unistd::Pid::from_raw(-(bridge.id() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while bridge.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            panic!("bridge.sh did not stop on SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = bridge.wait_with_output().unwrap();
    assert!(
        text(&out).contains(&format!("deleting network namespace {netns}")),
        "{}",
        text(&out)
    );
    let namespaces = run(Command::new("ip").args(["netns", "list"]));
    assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(&netns));

    let pcap = std::fs::read(w.checkout.join("capture.pcap")).unwrap();
    assert!(pcap.len() >= 24, "the pcap has its header");
    w.assert_theirs(&user);
}

#[test]
#[ignore = "needs root"]
fn sudo_before_a_script_refuses_to_build_as_root_in_the_users_checkout() {
    common::require_root();
    let user = nobody();
    let dir = common::TempDir::new("sudo-prefix");
    let w = world(&dir, &user, &[]);
    // `sudo scripts/X.sh` in a fresh checkout: root, the user's SUDO_*, sudo's PATH (no cargo).
    for (script, args) in [
        ("experiment.sh", &["--agent", "dry-run", "--count", "1"][..]),
        ("experiment.sh", &["--agent", "native", "--count", "1"][..]),
        ("test.sh", &[][..]),
        ("bridge.sh", &[][..]),
        ("bench.sh", &[][..]),
    ] {
        let out = Command::new(w.checkout.join("scripts").join(script))
            .args(args)
            .env_clear()
            .envs([
                ("PATH", SECURE_PATH),
                ("HOME", "/root"),
                ("SUDO_USER", "nobody"),
                ("SUDO_UID", &user.uid.to_string()),
                ("SUDO_GID", &user.gid.to_string()),
            ])
            .current_dir(&w.checkout)
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{script} {args:?}:\n{said}");
        let want = format!("run {script} without sudo (it builds as you and asks for sudo itself)");
        assert!(said.contains(&want), "{script} {args:?}:\n{said}");
        assert_eq!(said.lines().count(), 1, "one line: {said}");
    }
    w.assert_theirs(&user);
}
