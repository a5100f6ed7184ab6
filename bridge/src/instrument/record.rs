//! The record: one JSON line per request the daemon saw on the TUN device.
//!
//! The daemon fills an [`Entry`] when a request is settled (answered, dropped or
//! refused) and hands it to a [`Recorder`], which appends it to a JSONL file as one
//! whole line and flushes, so a crash loses at most the line being written. The
//! `report` module reads these files back with the same [`Entry`] type.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::judge::exchange::FlowKey;
use crate::judge::verdict::Verdict;

/// One request as the daemon saw it, from arrival to the reply (or its absence).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Entry {
    /// RFC 3339 UTC with milliseconds, when the request arrived on the TUN device.
    pub arrival: String,
    /// ICMP echo identifier (None for non-echo packets).
    pub id: Option<u16>,
    /// ICMP echo sequence number (None for non-echo packets).
    pub seq: Option<u16>,
    /// The host side's port, for UDP and TCP; left out of the line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// The agent's port, for UDP and TCP; left out of the line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// Request length in bytes (IPv4 total length).
    pub len: usize,
    /// How the request ended.
    pub outcome: Outcome,
    /// Arrival to hand-over to the agent (READ answer delivered), in milliseconds.
    pub queue_ms: Option<f64>,
    /// Hand-over to the agent's WRITE received, in milliseconds.
    pub agent_ms: Option<f64>,
    /// Arrival to reply written to the TUN device, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// WRITE received to packet written to the TUN device (the bridge's own share), in microseconds.
    pub write_us: Option<f64>,
    /// "valid", or the reason the reply was judged invalid.
    pub verdict: Option<String>,
    /// The verdict's class: "valid", or a snake_case word such as "payload" (see `Verdict::class`).
    #[serde(default)]
    pub class: Option<String>,
    /// Whether the reply was written to the device.
    pub written: bool,
    /// Free-form remark, left out of the line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How many requests the line stands for, on a line that summarises drops (stale,
    /// overflow, or still queued at shutdown) over an interval; absent means one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Entry {
    /// A line for a request that arrived at `arrival`, named by its flow key; timings left empty.
    pub fn new(arrival: SystemTime, key: Option<&FlowKey>, len: usize, outcome: Outcome) -> Entry {
        let echo = key.and_then(FlowKey::echo);
        let ports = key.and_then(FlowKey::ports);
        Entry {
            arrival: rfc3339(arrival),
            id: echo.map(|e| e.0),
            seq: echo.map(|e| e.1),
            host_port: ports.map(|p| p.0),
            peer_port: ports.map(|p| p.1),
            len,
            outcome,
            queue_ms: None,
            agent_ms: None,
            rtt_ms: None,
            write_us: None,
            verdict: None,
            class: None,
            written: false,
            note: None,
            count: None,
        }
    }

    /// Sets the verdict on the reply, its reason and its class.
    pub fn judged(&mut self, verdict: &Verdict) {
        self.verdict = Some(verdict.to_string());
        self.class = Some(verdict.class().to_string());
    }
}

/// How a request ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The agent wrote a reply and it was written to the device.
    Answered,
    /// The request aged out of the queue before the agent read it.
    Stale,
    /// The request was dropped because the queue was full.
    Overflow,
    /// The agent read the request but never wrote a reply.
    Unanswered,
    /// A WRITE that matched no outstanding request.
    Unmatched,
    /// The agent's reply was judged invalid and not written (strict mode).
    Refused,
    /// A packet off the device not addressed to the agent: never handed over.
    #[serde(rename = "not_for_agent")]
    NotForAgent,
}

impl Outcome {
    /// The lowercase word used in the record, e.g. `"stale"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Stale => "stale",
            Outcome::Overflow => "overflow",
            Outcome::Unanswered => "unanswered",
            Outcome::Unmatched => "unmatched",
            Outcome::Refused => "refused",
            Outcome::NotForAgent => "not_for_agent",
        }
    }
}

/// Why the record could not be opened or appended to.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be opened (or is a symlink).
    #[error("cannot open the record {}: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    /// An entry could not be turned into JSON.
    #[error("cannot encode a record line: {0}")]
    Encode(#[source] serde_json::Error),
    /// The line could not be written.
    #[error("cannot append to the record {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Appends [`Entry`] lines to a JSONL file, one whole line per call, flushed each time.
#[derive(Debug)]
pub struct Recorder {
    file: File,
    path: PathBuf,
}

impl Recorder {
    /// Opens `path` for appending, creating it if missing; a symlink is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path);
        match file {
            Ok(file) => Ok(Recorder { file, path }),
            Err(source) => Err(RecordError::Open { path, source }),
        }
    }

    /// The file this recorder appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as one line and flushes it.
    pub fn record(&mut self, entry: &Entry) -> Result<(), RecordError> {
        let mut line = serde_json::to_string(entry).map_err(RecordError::Encode)?;
        line.push('\n');
        // One write of the whole line: with O_APPEND it lands intact at the end.
        let written = self.file.write_all(line.as_bytes());
        written
            .and_then(|()| self.file.flush())
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// Formats `t` as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    // humantime panics before the epoch; a clock that far off is clamped instead.
    humantime::format_rfc3339_millis(t.max(UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testdir::TestDir;
    use std::time::Duration;

    fn entry(seq: u16, outcome: Outcome) -> Entry {
        Entry {
            arrival: "2024-05-01T12:00:00.123Z".into(),
            id: Some(0x1234),
            seq: Some(seq),
            host_port: None,
            peer_port: None,
            len: 84,
            outcome,
            queue_ms: Some(1.5),
            agent_ms: Some(2500.25),
            rtt_ms: Some(2502.0),
            write_us: Some(40.0),
            verdict: Some("valid".into()),
            class: Some("valid".into()),
            written: true,
            note: None,
            count: None,
        }
    }

    fn temp_path(name: &str) -> (TestDir, PathBuf) {
        let dir = TestDir::new("record");
        let path = dir.join(name);
        (dir, path)
    }

    #[test]
    fn round_trip() {
        let mut e = entry(1, Outcome::Refused);
        e.note = Some("strict".into());
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains(r#""outcome":"refused""#));
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), e);
    }

    #[test]
    fn note_absent_is_omitted_and_defaults() {
        let e = entry(1, Outcome::Answered);
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("note"));
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap().note, None);
    }

    #[test]
    fn new_names_the_flow() {
        use crate::judge::exchange::{Flow, Protocol};
        let mut key = FlowKey {
            protocol: Protocol::Icmpv4,
            host: [192, 0, 2, 1].into(),
            peer: [192, 0, 2, 2].into(),
            flow: Flow::Echo { ident: 7, seq: 3 },
        };
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        let e = Entry::new(t, Some(&key), 84, Outcome::Stale);
        assert_eq!((e.id, e.seq, e.host_port), (Some(7), Some(3), None));
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("port"), "{line}");
        key.flow = Flow::Ports {
            host: 4000,
            peer: 7,
        };
        let e = Entry::new(t, Some(&key), 84, Outcome::Stale);
        assert_eq!(
            (e.id, e.host_port, e.peer_port),
            (None, Some(4000), Some(7))
        );
        assert_eq!(Entry::new(t, None, 0, Outcome::Unmatched).id, None);
    }

    #[test]
    fn judged_rows_carry_the_class_beside_the_verdict() {
        let mut e = entry(1, Outcome::Answered);
        e.judged(&Verdict::Ttl);
        let line = serde_json::to_string(&e).unwrap();
        assert!(
            line.contains(r#""verdict":"TTL 0, want 1..255","class":"ttl""#),
            "{line}"
        );
        // A line written before the class existed still reads.
        let old = line.replace(r#","class":"ttl""#, "");
        assert_eq!(serde_json::from_str::<Entry>(&old).unwrap().class, None);
    }

    #[test]
    fn outcome_words() {
        for o in [
            Outcome::Answered,
            Outcome::Stale,
            Outcome::Overflow,
            Outcome::Unanswered,
            Outcome::Unmatched,
            Outcome::Refused,
        ] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
    }

    #[test]
    fn one_line_per_entry() {
        let (_dir, path) = temp_path("lines.jsonl");
        let mut rec = Recorder::open(&path).unwrap();
        rec.record(&entry(1, Outcome::Answered)).unwrap();
        rec.record(&entry(2, Outcome::Stale)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(
            serde_json::from_str::<Entry>(lines[1]).unwrap(),
            entry(2, Outcome::Stale)
        );
    }

    #[test]
    fn appends_to_existing_file() {
        let (_dir, path) = temp_path("append.jsonl");
        Recorder::open(&path)
            .unwrap()
            .record(&entry(1, Outcome::Answered))
            .unwrap();
        Recorder::open(&path)
            .unwrap()
            .record(&entry(2, Outcome::Overflow))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let seqs: Vec<u16> = text
            .lines()
            .map(|l| serde_json::from_str::<Entry>(l).unwrap().seq.unwrap())
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn a_symlink_is_refused_with_the_path_and_the_cause() {
        let (dir, path) = temp_path("target.jsonl");
        let link = dir.join("link.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = Recorder::open(&link).unwrap_err();
        assert!(matches!(err, RecordError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("link.jsonl"), "{err}");
        let cause = std::error::Error::source(&err).expect("the I/O error");
        assert!(cause.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn rfc3339_millis_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00.123Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
