//! The malformed-input corpus (`tests/corpus/commands.txt`) against a running daemon.
//!
//! Every case is written raw into the command FIFO, as a shell redirection would,
//! and must get exactly one `ERR <reason>` line within a second, with nothing after
//! it; the daemon must still be running after each case, must have written nothing
//! to the device, and must answer a request once the whole corpus is through.
//! No root needed: the server runs on an in-memory device (see `common`).

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The corpus, one case per line (the format is described at the top of the file).
const CORPUS: &str = include_str!("corpus/commands.txt");
/// How long a case may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// How long to keep listening after an answer for a second one that must not come.
const QUIET_AFTER: Duration = Duration::from_millis(100);

/// One malformed command and what its answer must say.
struct Case {
    /// Line number in the corpus file.
    line_no: usize,
    /// Text the `ERR` reason must contain.
    want: String,
    /// The bytes written into the FIFO, newline included unless the case ends with `\z`.
    bytes: Vec<u8>,
    /// Why the case is there.
    why: String,
}

fn load() -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, line) in CORPUS.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            fields.len(),
            3,
            "corpus line {}: want 3 TAB-separated fields",
            i + 1
        );
        cases.push(Case {
            line_no: i + 1,
            want: fields[0].to_string(),
            bytes: unescape(fields[1]),
            why: fields[2].to_string(),
        });
    }
    cases
}

/// Decodes `\\ \t \r \xHH`, expands `{TEXT*N}`, and adds the newline unless it ends in `\z`.
fn unescape(field: &str) -> Vec<u8> {
    let (body, newline) = match field.strip_suffix("\\z") {
        Some(body) => (body, false),
        None => (field, true),
    };
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if let Some((bytes, len)) = escape(rest).or_else(|| repeat(rest)) {
            out.extend(bytes);
            rest = &rest[len..];
            continue;
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        rest = &rest[c.len_utf8()..];
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// A backslash escape at the start of `s`: its bytes and its length in `s`.
fn escape(s: &str) -> Option<(Vec<u8>, usize)> {
    let rest = s.strip_prefix('\\')?;
    match rest.chars().next()? {
        '\\' => Some((vec![b'\\'], 2)),
        't' => Some((vec![b'\t'], 2)),
        'r' => Some((vec![b'\r'], 2)),
        'x' => {
            let byte = u8::from_str_radix(rest.get(1..3)?, 16).ok()?;
            Some((vec![byte], 4))
        }
        _ => None,
    }
}

/// A `{TEXT*N}` repetition at the start of `s`: its bytes and its length in `s`.
fn repeat(s: &str) -> Option<(Vec<u8>, usize)> {
    let inner = s.strip_prefix('{')?;
    let end = inner.find('}')?;
    let (text, count) = inner[..end].rsplit_once('*')?;
    let count: usize = count.parse().ok()?;
    if text.contains('{') {
        return None;
    }
    Some((text.repeat(count).into_bytes(), end + 2))
}

/// The answer FIFO opened for reading without waiting for the daemon.
fn open_answer(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .expect("open the answer FIFO")
}

/// Everything the daemon writes into `resp` until `limit`: stops listening `QUIET_AFTER`
/// after its first answer ended, so a second answer would be caught too.
fn collect(mut resp: &File, limit: Instant) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let (mut got, mut answered, mut ended) = (Vec::new(), None, None::<Instant>);
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= limit || ended.is_some_and(|t| now >= t + QUIET_AFTER) {
            return (got, answered);
        }
        match resp.read(&mut chunk) {
            Ok(0) if !got.is_empty() && ended.is_none() => ended = Some(now),
            Ok(n) if n > 0 => {
                got.extend_from_slice(&chunk[..n]);
                answered.get_or_insert(start.elapsed());
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Sends one case raw and returns the bytes that came back and how long the first took.
fn send(bridge: &Bridge, case: &Case) -> (Vec<u8>, Option<Duration>) {
    let resp = open_answer(&bridge.resp);
    let path = bridge.cmd.clone();
    let bytes = case.bytes.clone();
    // A thread, because a megabyte does not fit in the pipe: the daemon reads while we write.
    let writer = std::thread::spawn(move || {
        let mut cmd = OpenOptions::new().write(true).open(path).expect("open cmd");
        cmd.write_all(&bytes)
    });
    let result = collect(&resp, Instant::now() + ANSWER_WITHIN + QUIET_AFTER * 3);
    writer.join().unwrap().expect("write the case");
    if !case.bytes.ends_with(b"\n") {
        // The writer closed mid-line: let the daemon see the end of that session before
        // the next writer opens, or the FIFO would join the two writers' bytes.
        std::thread::sleep(Duration::from_millis(300));
    }
    result
}

fn check(case: &Case, got: &[u8], took: Option<Duration>) -> Result<(), String> {
    let text = String::from_utf8_lossy(got);
    let took = took.ok_or("no answer")?;
    if took > ANSWER_WITHIN {
        return Err(format!("answered after {took:?}"));
    }
    if !text.ends_with('\n') || text.matches('\n').count() != 1 {
        return Err(format!("not exactly one line: {text:.200?}"));
    }
    let line = text.trim_end_matches('\n');
    if !line.starts_with("ERR ") || !line[4..].contains(&case.want) {
        return Err(format!("{line:.200?} is not ERR ...{}...", case.want));
    }
    Ok(())
}

#[test]
fn every_malformed_command_gets_one_err_line() {
    let cases = load();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let dir = TempDir::new("corpus");
    let (mut bridge, net) = Bridge::memory(&dir, &[]);
    let mut failures = Vec::new();
    for case in &cases {
        let (got, took) = send(&bridge, case);
        if let Err(e) = check(case, &got, took) {
            failures.push(format!("line {} ({}): {e}", case.line_no, case.why));
        }
        assert!(
            bridge.alive(),
            "daemon died on line {} ({})",
            case.line_no,
            case.why
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        bridge.counts.get(Count::Settled),
        0,
        "a malformed packet reached the device"
    );
    assert_eq!(
        net.recv(Duration::from_millis(50)).unwrap(),
        None,
        "a malformed packet reached the device"
    );
    let request = ping_memory(&net, 1, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
}

#[test]
fn corpus_escapes_decode() {
    assert_eq!(unescape("A\\tB\\r\\x00\\\\"), b"A\tB\r\0\\\n");
    assert_eq!(unescape("{ab*3}c\\z"), b"abababc");
    assert_eq!(unescape("{\"cmd\": 1}"), b"{\"cmd\": 1}\n");
    assert_eq!(unescape("\\xef\\xbc\\xb2"), "Ｒ\n".as_bytes());
}
