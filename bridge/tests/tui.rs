//! Interactive Claude Code (the TUI) end to end, driven through tmux as a person would, with
//! both ends of the supported range: the pinned client and the oldest (`target/clients/`,
//! installed by `scripts/test.sh`). Each test gives the client a private HOME whose
//! `.claude.json` says only that onboarding is done, the scripted model, and the real bridge
//! in a namespace of its own; starts `claude --permission-mode default`; answers the trust
//! dialog by choosing "Yes, I trust this folder" (from 2.1.248 the cursor starts on "No,
//! exit") and the API-key question by choosing "Yes" (the cursor starts on "No
//! (recommended)"); checks the footer shows no mode other than the default one (2.1.283 and
//! later start in auto mode otherwise; 2.1.332 calls the default "manual"); types
//! `/ping-serve 3` and pings three times: three valid replies and the report on screen.
//! The MCP runs do the same with `/ping-serve-mcp 3` as an ordinary user (`nobody`: `tunbridge
//! mcp` refuses root), the bridge giving that user its channel: the project's `.mcp.json`
//! loads once the folder is trusted (the settings enable it) and its tools run with no prompt.
//! Needs root, tmux and both clients (`#[ignore = "needs root"]`; `scripts/test.sh` installs
//! the clients and tmux and runs them with `--include-ignored`, where anything missing fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmux server of the test's own (its own socket), killed with everything in it on drop;
/// the drop waits until the program in the window has exited, so it writes nothing more into
/// the test's HOME once the test removes it.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a 160 x 50 window.
    fn start(tag: &str, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("tbt-{tag}-{}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "160",
            "-y",
            "50",
            command,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the window shows now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "main", key]);
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
    }

    /// The screen once `done` holds for it; fails after `limit` with what was shown.
    fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// In the menu on screen, moves the cursor (❯) to the option whose line holds `option`
    /// and confirms it: the answer is chosen by its text, whatever the default.
    fn choose(&self, option: &str) {
        for _ in 0..6 {
            let screen = self.screen();
            let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
            let cursor = lines.iter().position(|l| l.contains('❯'));
            let target = lines.iter().position(|l| l.contains(option));
            let (Some(cursor), Some(target)) = (cursor, target) else {
                panic!("no menu with {option:?} on screen:\n{screen}");
            };
            if cursor == target {
                self.key("Enter");
                return;
            }
            self.key(if target > cursor { "Down" } else { "Up" });
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "could not move the cursor to {option:?}:\n{}",
            self.screen()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let pane = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "-t",
                "main",
                "#{pane_pid}",
            ])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            });
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(pid) = pane {
            if !Path::new(&format!("/proc/{pid}")).exists() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What the TUI is asked to do: the command typed, the line its report ends with, and the
/// user the client runs as (None: root, who runs the test).
struct Serve {
    command: &'static str,
    done: &'static str,
    user: Option<&'static str>,
}

/// Over Bash, two calls per packet, as root.
const BASH: Serve = Serve {
    command: "/ping-serve 3",
    done: "Stopped: 3 packets served.",
    user: None,
};

/// Over the project's MCP server, one call per packet, as an ordinary user.
const MCP: Serve = Serve {
    command: "/ping-serve-mcp 3",
    done: "Stopped: the count reached.",
    user: Some("nobody"),
};

/// The TUI of `claude` serves three pings as `serve` says, as the module says.
fn tui_serves_three_pings(tag: &str, claude: &Path, serve: &Serve) {
    let root = common::repo_with_claude_code();
    let extra: Vec<&str> = serve.user.map_or(vec![], |u| vec!["--user", u]);
    let (ns, dir, bridge) = common::recorded_root_bridge(tag, &extra);
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(
        home.join(".claude.json"),
        r#"{"hasCompletedOnboarding": true}"#,
    )
    .unwrap();
    let mut run_as = String::new();
    if let Some(name) = serve.user {
        let user = nix::unistd::User::from_name(name).unwrap().unwrap();
        // Theirs: the client's HOME, and the folder where the bridge, as that user, removes
        // its FIFOs when it stops.
        for path in [dir.0.clone(), home.clone(), home.join(".claude.json")] {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap();
        }
        run_as = format!(
            "setpriv --reuid={} --regid={} --clear-groups ",
            user.uid, user.gid
        );
    }
    let log = dir.join("model.jsonl");
    let log_arg = log.display().to_string();
    let model = common::ScriptedModel::start(&["--port", "0", "--log", &log_arg])
        .expect("the scripted model did not start");
    let bin = PathBuf::from(common::BIN);
    let env = [
        format!("HOME={}", home.display()),
        format!(
            "PATH={}:/usr/local/bin:/usr/bin:/bin",
            bin.parent().unwrap().display()
        ),
        "TERM=xterm-256color".into(),
        format!("TUNBRIDGE_CMD_FIFO={}", bridge.cmd.display()),
        format!("TUNBRIDGE_RESP_FIFO={}", bridge.resp.display()),
        format!("ANTHROPIC_BASE_URL={}", model.url),
        "ANTHROPIC_API_KEY=sk-ant-tui-test-0123456789abcdef".into(),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1".into(),
        "DISABLE_TELEMETRY=1".into(),
        "DISABLE_AUTOUPDATER=1".into(),
    ];
    let command = format!(
        "cd '{}' && exec {run_as}env -i {} '{}' --permission-mode default",
        root.display(),
        env.iter()
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(" "),
        claude.display()
    );
    let tmux = Tmux::start(tag, &command);

    let long = Duration::from_secs(60);
    tmux.wait_for(long, "trust dialog", |s| s.contains("trust this folder"));
    tmux.choose("Yes, I trust this folder");
    tmux.wait_for(long, "API-key question", |s| {
        s.contains("Do you want to use this API key?")
    });
    tmux.choose("Yes");
    let ready = tmux.wait_for(long, "prompt", |s| s.contains("for shortcuts"));
    // Every "... mode on" the footer shows is the default mode (2.1.332: "manual").
    for line in ready.lines().filter(|l| l.contains(" mode on")) {
        assert!(
            line.contains("manual mode on"),
            "not the default mode: {line}"
        );
    }

    tmux.type_text(serve.command);
    std::thread::sleep(Duration::from_millis(500));
    tmux.key("Enter");
    // Ping once the model has asked for its first read: a packet waits in the queue for it.
    let deadline = Instant::now() + long;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(r#""answer": "read""#)
    {
        assert!(
            Instant::now() < deadline,
            "the model was never asked to read:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // -w, not -W: once replies come, -W waits only two round trips for the last one.
    let ping = ns.exec(&["ping", "-c", "3", "-i", "0.5", "-w", "60", common::PEER]);
    let ping = String::from_utf8_lossy(&ping.stdout);
    let screen = tmux.wait_for(long, "report", |s| s.contains(serve.done));
    assert!(ping.contains("3 received"), "{ping}\n{screen}");
    assert!(
        !screen.contains("Do you want to proceed?"),
        "a permission prompt:\n{screen}"
    );
    let records = common::records_once(&dir.record(), 3, |r| r["outcome"] == "answered");
    let answered: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "answered")
        .collect();
    assert_eq!(answered.len(), 3, "{records:?}");
    for r in answered {
        assert_eq!(r["verdict"], "valid", "{r}");
    }
    if serve.user.is_some() {
        // The packets went through the MCP tools, one call each after the first read.
        let log = std::fs::read_to_string(&log).unwrap();
        for tool in ["read_packet", "write_and_read_next", "write_packet"] {
            assert!(
                log.contains(&format!("\"mcp__tunbridge__{tool}\"")),
                "no {tool} call:\n{log}"
            );
        }
        assert!(!log.contains("\"tunbridge "), "a Bash call:\n{log}");
    }
    eprintln!("{}: {screen}", claude.display());
    drop(tmux);
    drop(model);
    drop(bridge);
    drop(dir);
    drop(ns);
}

#[test]
#[ignore = "needs root"]
fn the_pinned_client_serves_pings_in_the_tui() {
    let claude = common::repo_with_claude_code().join("node_modules/.bin/claude");
    tui_serves_three_pings("tui-pin", &claude, &BASH);
}

#[test]
#[ignore = "needs root"]
fn the_oldest_supported_client_serves_pings_in_the_tui() {
    common::repo_with_claude_code();
    tui_serves_three_pings("tui-old", &common::oldest_client().1, &BASH);
}

#[test]
#[ignore = "needs root"]
fn the_pinned_client_serves_pings_over_mcp_in_the_tui() {
    let claude = common::repo_with_claude_code().join("node_modules/.bin/claude");
    tui_serves_three_pings("tui-pin-mcp", &claude, &MCP);
}

#[test]
#[ignore = "needs root"]
fn the_oldest_supported_client_serves_pings_over_mcp_in_the_tui() {
    common::repo_with_claude_code();
    tui_serves_three_pings("tui-old-mcp", &common::oldest_client().1, &MCP);
}
