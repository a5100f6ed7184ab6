//! Issue 20: the harness under a scripted model that behaves like a real one (latency,
//! thinking, caching, API errors, deviations from the prompt): the real client (from npm)
//! against `python3 -m harness.model` through `scripts/experiment.sh --agent dry-run
//! --model-behaviour ...`, in private network namespaces. Every ping must end with a fate
//! that names what happened, and every run in bounded time; Ctrl-C leaves nothing behind.
//! The client's retry knobs keep the error runs short. Needs root and `npm ci`
//! (`#[ignore = "needs root"]`; `scripts/test.sh` runs both, and then a missing one is a
//! failure).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

/// The client retries at most twice and waits at most 20 s for response headers.
const KNOBS: [(&str, &str); 2] = [
    ("CLAUDE_CODE_MAX_RETRIES", "2"),
    ("API_TIMEOUT_MS", "20000"),
];

/// Runs `scripts/experiment.sh ARGS --out OUT`; returns whether it succeeded and its output.
fn experiment(root: &Path, out: &common::TempDir, args: &[&str]) -> (bool, String) {
    let run = Command::new(root.join("scripts/experiment.sh"))
        .args(args)
        .arg("--out")
        .arg(&out.0)
        .env("TUNBRIDGE", common::BIN)
        .envs(KNOBS)
        .output()
        .expect("experiment.sh");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    (run.status.success(), text)
}

/// Each configuration's result.json, by its behaviour, from run.json.
fn results(out: &Path) -> Vec<(String, Value)> {
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    run["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let folder = out.join(c["folder"].as_str().unwrap());
            let result = std::fs::read(folder.join("result.json"))
                .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
            let result: Value = serde_json::from_slice(&result).unwrap();
            let behaviour = result["meta"]["behaviour"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (behaviour, result)
        })
        .collect()
}

/// One ping per behaviour, one-shot: each ends with the fate the behaviour allows, the
/// reply valid where the behaviour lets the model answer. The two ends of the supported range
/// answer some faults differently (2.1.197 recovers a cut stream without a retry event), so
/// both run it.
#[test]
#[ignore = "needs root"]
fn every_behaviour_one_shot_ends_each_ping_with_its_fate() {
    every_behaviour_one_shot("behaviours", &[]);
}

#[test]
#[ignore = "needs root"]
fn every_behaviour_one_shot_with_the_oldest_client() {
    let (_, claude) = common::oldest_client();
    every_behaviour_one_shot("behaviours-oldest", &["--client", claude.to_str().unwrap()]);
}

fn every_behaviour_one_shot(tag: &str, client: &[&str]) {
    let root = common::repo_with_claude_code();
    let out = common::TempDir::new(tag);
    // (behaviour, fate kind, valid reply, words the fate must say)
    let expect = [
        ("python-first", "refused_then_answered", true, "`python3 -c"),
        ("raw-fifo", "refused_then_answered", true, "`echo \"READ\""),
        (
            "malformed-hex",
            "malformed_then_answered",
            true,
            "ERR bad hex",
        ),
        (
            "write-twice",
            "answered_twice",
            true,
            "second no_matching_request",
        ),
        (
            "no-write",
            "read_not_written",
            false,
            "read and never written",
        ),
        (
            "errors:at=2;kinds=529;burst=2",
            "answered_after_retries",
            true,
            "2 retries of a 529",
        ),
        (
            "errors:rate=1;kinds=500",
            "api_gave_up",
            false,
            "the API gave up after 2 retries of a 500",
        ),
        (
            "errors:at=3;kinds=cut",
            "answered_after_retries",
            true,
            "cut stream",
        ),
        (
            "thinking,latency:scale=0.05,caching",
            "answered",
            true,
            "valid",
        ),
    ];
    let mut args = vec!["--agent", "dry-run", "--count", "1", "--ping-wait", "20"];
    args.extend(["--jobs", "2", "--run-timeout", "120"]);
    args.extend(client);
    for (behaviour, ..) in &expect {
        args.extend(["--model-behaviour", behaviour]);
    }
    let (_, text) = experiment(root, &out, &args);
    assert!(
        text.contains("9 configurations x 1 ping: 9 agent runs"),
        "{text}"
    );
    let found = results(&out.0);
    for (behaviour, kind, valid, words) in expect {
        let (_, result) = found
            .iter()
            .find(|(b, _)| b == behaviour)
            .unwrap_or_else(|| panic!("no result for {behaviour}:\n{text}"));
        let ping = &result["pings"][0];
        assert_eq!(ping["fate_kind"], kind, "{behaviour}: {ping}");
        assert_eq!(ping["valid"], valid, "{behaviour}: {ping}");
        assert!(
            ping["fate"].as_str().unwrap().contains(words),
            "{behaviour}: {ping}"
        );
    }
    let (_, cached) = found.iter().find(|(b, _)| b.contains("caching")).unwrap();
    let ping = &cached["pings"][0];
    assert!(ping["cached_tokens"].as_u64().unwrap() > 0, "{ping}");
    assert!(
        ping["cost_usd"].as_f64().unwrap() < ping["cost_without_cache_usd"].as_f64().unwrap(),
        "{ping}"
    );
    let (_, retried) = found.iter().find(|(b, _)| b.contains("529")).unwrap();
    assert_eq!(retried["pings"][0]["retries"]["529"], 2);
    // The leaderboard counts the fates per configuration; every summary names them.
    let board = std::fs::read_to_string(out.join("leaderboard.md")).unwrap();
    for kind in ["answered_twice 1", "api_gave_up 1", "read_not_written 1"] {
        assert!(board.contains(kind), "{kind}:\n{board}");
    }
}

/// Continuous mode under seeded API errors and a model that writes each reply twice: every
/// ping answered and named, the client's retries counted.
#[test]
#[ignore = "needs root"]
fn continuous_under_errors_and_a_deviation_names_every_fate() {
    let root = common::repo_with_claude_code();
    let out = common::TempDir::new("continuous-faults");
    let args = [
        "--agent",
        "dry-run",
        "--continuous",
        "--count",
        "4",
        "--interval",
        "1",
        "--ping-wait",
        "30",
        "--model-behaviour",
        "errors:at=2,5;kinds=529,write-twice",
        // The deviations change a read-then-write procedure's commands (the config refuses
        // them with the one-call default, ping-serve-next.md).
        "--prompt",
        "prompts/ping-serve.md",
    ];
    let (ok, text) = experiment(root, &out, &args);
    assert!(ok, "{text}");
    let (_, result) = results(&out.0).remove(0);
    let pings = result["pings"].as_array().unwrap();
    assert_eq!(pings.len(), 4);
    for p in pings {
        assert_eq!(p["valid"], true, "{p}");
        assert!(
            p["fate"]
                .as_str()
                .unwrap()
                .contains("written twice: first valid, second no_matching_request"),
            "{p}"
        );
    }
    let retried: u64 = pings
        .iter()
        .map(|p| p["retries"]["529"].as_u64().unwrap_or(0))
        .sum();
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    // Two 529s in all: one may fall in the session's start-up, before its first packet.
    assert!(summary.contains("retries 2 of a 529"), "{summary}");
    assert!(retried >= 1, "{summary}");
}

/// Ctrl-C in the middle of a continuous run with a slow model: the run stops, cleans up
/// (no namespace, no process of the run left), writes what ran, and exits 130. The SIGINT
/// goes to the whole process group, as a terminal sends it: the harness alone stops what it
/// started, in order, so the client never sees its model vanish mid-request (a retry that
/// would be counted against the model).
#[test]
#[ignore = "needs root"]
fn ctrl_c_mid_run_leaves_nothing_behind() {
    interrupted_mid_run_leaves_nothing_behind(Signal::SIGINT, "ctrl-c");
}

/// The same when the terminal closes (SIGHUP to the process group): before, the harness died
/// of it at once, leaving its namespace and client behind.
#[test]
#[ignore = "needs root"]
fn a_closed_terminal_mid_run_leaves_nothing_behind() {
    interrupted_mid_run_leaves_nothing_behind(Signal::SIGHUP, "hang-up");
}

fn interrupted_mid_run_leaves_nothing_behind(signal: Signal, tag: &str) {
    let root = common::repo_with_claude_code();
    let out = common::TempDir::new(tag);
    let mut child = Command::new(root.join("scripts/experiment.sh"))
        .args(["--agent", "dry-run", "--continuous", "--count", "20"])
        .args(["--model-behaviour", "latency:ttft=4", "--out"])
        .arg(&out.0)
        .env("TUNBRIDGE", common::BIN)
        .envs(KNOBS)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("experiment.sh");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("waits in READ; pinging") {
            break;
        }
    }
    assert!(seen.contains("waits in READ"), "{seen}");
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still running 60 s after {signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "{seen}{}", rest.join("\n"));
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&format!("tbx-{pid}-")), "{netns}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let left: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains(&out.0.display().to_string()) || l.contains(&format!("tbx-{pid}-")))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["interrupted"], true, "{run}");
    assert!(out.join("leaderboard.md").exists());
    // The bridge was stopped by the harness, after the session it served, not by the signal
    // while the session was still running.
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let last: Value = serde_json::from_str(runs.lines().last().unwrap()).unwrap();
    let log = std::fs::read_to_string(out.join("bridge.log")).unwrap();
    let stopping = log
        .lines()
        .find(|l| l.contains(" stopping"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no stopping line: {log}"));
    let stopping = stopping.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!(
        stopping.as_secs_f64() > last["end"].as_f64().unwrap(),
        "the bridge stopped at {stopping:?}, before the session ended: {last}"
    );
    let events = std::fs::read_to_string(out.join("claude-s1.jsonl")).unwrap();
    let retries: Vec<&str> = events.lines().filter(|l| l.contains("api_retry")).collect();
    assert!(retries.is_empty(), "the client retried: {retries:?}");
}

/// A slow model in continuous mode (issue 20, item 3): pings five a second for 10 s, a model
/// that takes about 1.7 s to write each reply and about 3.5 s a packet, pings that give up
/// after 6 s. The bridge hands the agent only packets it can still answer in time at the pace
/// of its answers so far, so its work is not thrown away on pings that gave up (at most one
/// late reply, where the machine's load made one answer slower than the estimate; the bridge
/// before this policy handed over the oldest packet and had three of four answers late), and
/// every other ping is named as dropped in the queue. Asserted on counts, not times.
#[test]
#[ignore = "needs root"]
fn a_slow_model_in_continuous_mode_answers_only_what_it_can_in_time() {
    let root = common::repo_with_claude_code();
    let out = common::TempDir::new("slow-model");
    let args = [
        "--agent",
        "dry-run",
        "--continuous",
        "--count",
        "50",
        "--interval",
        "0.2",
        "--ping-wait",
        "6",
        "--session-packets",
        "50",
        "--model-behaviour",
        "latency:ttft=1.5",
    ];
    let (ok, text) = experiment(root, &out, &args);
    assert!(ok, "{text}");
    let (_, result) = results(&out.0).remove(0);
    let pings = result["pings"].as_array().unwrap();
    let kinds: Vec<&str> = pings
        .iter()
        .map(|p| p["fate_kind"].as_str().unwrap())
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    let (answered, late) = (count("answered"), count("late"));
    assert!(late <= 1, "work wasted on pings that gave up: {kinds:?}");
    assert!(answered >= 3, "{kinds:?}");
    assert_eq!(answered + late + count("expired_in_queue"), 50, "{kinds:?}");
    for p in pings.iter().filter(|p| p["fate_kind"] == "answered") {
        assert_eq!(p["valid"], true, "{p}");
    }
}
