//! The Claude Code harness end to end: the real client (from npm) against the
//! scripted dry-run model, through the shipped prompt, settings and bridge, in
//! default permission mode, in a private network namespace (via
//! `scripts/experiment.sh --agent dry-run`). Needs root and `npm ci` (which
//! `scripts/test.sh` runs); skipped without them, except under CI.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `scripts/experiment.sh --agent dry-run` with `args`, results in `out`; panics on failure.
fn run_experiment(root: &Path, args: &[&str], out: &common::TempDir) {
    let run = Command::new(root.join("scripts/experiment.sh"))
        .args(["--agent", "dry-run"])
        .args(args)
        .arg("--out")
        .arg(&out.0)
        .output()
        .expect("experiment.sh");
    assert!(
        run.status.success(),
        "experiment.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn claude_code_answers_a_real_ping_through_the_prompt() {
    let Some(root) =
        common::repo_with_claude_code("claude_code_answers_a_real_ping_through_the_prompt")
    else {
        return;
    };
    let out = common::TempDir::new("harness");
    run_experiment(root, &["--count", "2", "--ping-wait", "60"], &out);

    // Both pings saw their reply, and the bridge judged both replies valid.
    for i in 1..=2 {
        let ping = std::fs::read_to_string(out.join(&format!("ping-{i}.txt"))).unwrap();
        assert!(ping.contains("1 received"), "ping {i}:\n{ping}");
    }
    let records: Vec<Value> = std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(r["outcome"], "answered");
        assert_eq!(r["verdict"], "valid");
    }
    // Claude Code ran in default permission mode and reported its turns and tokens.
    let result: Value =
        serde_json::from_slice(&std::fs::read(out.join("claude-1.json")).unwrap()).unwrap();
    assert_eq!(result["is_error"], false, "{result}");
    assert!(result["num_turns"].as_u64().unwrap() >= 3, "{result}");
    assert!(result["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(
        result
            .get("permission_denials")
            .map_or(true, |d| d.as_array().is_some_and(|a| a.is_empty())),
        "{result}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("2 valid replies"), "{summary}");
}

/// `scripts/dry-run.sh --with-bridge`, the set-up check the README offers users: its own
/// namespace and bridge, the real client with a throwaway config dir, one real ping.
#[test]
fn dry_run_script_answers_a_ping_with_its_own_bridge() {
    let Some(root) =
        common::repo_with_claude_code("dry_run_script_answers_a_ping_with_its_own_bridge")
    else {
        return;
    };
    let fifos = common::TempDir::new("dryrun");
    let run = Command::new(root.join("scripts/dry-run.sh"))
        .arg("--with-bridge")
        .env("TUNBRIDGE", common::BIN)
        .env("TUNBRIDGE_CMD_FIFO", fifos.join("cmd"))
        .env("TUNBRIDGE_RESP_FIFO", fifos.join("resp"))
        .output()
        .expect("dry-run.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "dry-run.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("PASS: read and write ran without approval"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS: ping got the reply"), "{stdout}");
    assert!(stdout.contains("1 received"), "{stdout}");
}

/// `/ip-stack` through the real client: an IPv6 ping and a TCP connect from the kernel,
/// each answered by the dry-run model the way prompts/ip-stack.md says
/// (examples/dry_run_stack.py), judged valid by the bridge and accepted by the kernel.
#[test]
fn claude_code_answers_ipv6_and_tcp_through_ip_stack() {
    let Some(root) =
        common::repo_with_claude_code("claude_code_answers_ipv6_and_tcp_through_ip_stack")
    else {
        return;
    };
    let out = common::TempDir::new("harness-ipstack");
    let args = [
        "--prompt",
        "prompts/ip-stack.md",
        "--count",
        "2",
        "--ping-wait",
        "60",
    ];
    let traffic = ["--traffic", "ping6", "--traffic", "tcp-syn"];
    run_experiment(root, &[&args[..], &traffic[..]].concat(), &out);
    let ping6 = std::fs::read_to_string(out.join("ping-1.txt")).unwrap();
    assert!(ping6.contains("1 received"), "ping -6:\n{ping6}");
    let tcp = std::fs::read_to_string(out.join("ping-2.txt")).unwrap();
    assert!(
        tcp.starts_with("ok tcp-syn") && tcp.contains("ECONNREFUSED"),
        "{tcp}"
    );
    let records: Vec<Value> = std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["outcome"] == "answered")
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(r["class"], "valid", "{r}");
    }
    // The model was asked through the slash command and wrote once per round.
    let requests = std::fs::read_to_string(out.join("model-requests.jsonl")).unwrap();
    assert_eq!(
        requests.matches("\"procedure\": \"stack\"").count(),
        2,
        "{requests}"
    );
}
