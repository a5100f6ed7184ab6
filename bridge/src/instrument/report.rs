//! The report: record files summarised side by side so models compare at a glance.
//!
//! [`load`] reads one JSONL record file into [`Entry`] values, [`Summary::from_entries`]
//! counts outcomes and verdicts and takes the latency figures, and [`render`] lays
//! several summaries out as columns (one per file, one row per metric) as terminal
//! text, a GitHub Markdown table or JSON. [`run`] does all three for the
//! `tunbridge report FILE...` subcommand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::instrument::record::{Entry, Outcome};

/// What went wrong while reading record files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The record file could not be opened.
    #[error("{}: cannot open: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    /// A line could not be read (an I/O error or invalid UTF-8).
    #[error("{}:{line}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        line: usize,
        source: io::Error,
    },
    /// A line is not a record entry.
    #[error("{}", bad_line(.path, *.line, .source))]
    BadLine {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// The text of a `BadLine` error: `path:line:column: not a record entry: reason`.
fn bad_line(path: &Path, line: usize, source: &serde_json::Error) -> String {
    // serde_json counts within the one line; keep its column, drop its "line 1".
    let column = source.column();
    let text = source.to_string();
    let suffix = format!(" at line {} column {column}", source.line());
    let text = text.strip_suffix(&suffix).unwrap_or(&text);
    format!(
        "{}:{line}:{column}: not a record entry: {text}",
        path.display()
    )
}

/// Reads a JSONL record file; blank lines are skipped, a bad line is an error naming file and line.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<Entry>, ReportError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| ReportError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut entries = Vec::new();
    for (index, text) in BufReader::new(file).lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            line,
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&text).map_err(|source| ReportError::BadLine {
            path: path.to_path_buf(),
            line,
            source,
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Counts and latency figures for one record file.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Requests seen on the device: every entry except `unmatched` and `not_for_agent`.
    pub pings: usize,
    /// Requests the agent replied to: outcome `answered` or `refused`.
    pub answered: usize,
    /// Requests whose reply was judged valid.
    pub valid: usize,
    /// Requests whose reply was judged invalid.
    pub invalid: usize,
    /// Invalid replies by the verdict's class (`payload`, `icmp_checksum`, ...).
    pub invalid_by_class: BTreeMap<String, usize>,
    /// Invalid replies by full verdict text.
    pub invalid_by_reason: BTreeMap<String, usize>,
    /// Requests that aged out of the queue before the agent read them.
    pub stale: usize,
    /// Requests dropped because the queue was full.
    pub overflow: usize,
    /// Requests the agent read but never answered.
    pub unanswered: usize,
    /// Agent WRITEs that matched no outstanding request.
    pub unmatched: usize,
    /// Packets off the device not addressed to the agent, never handed over.
    pub not_for_agent: usize,
    /// Smallest arrival-to-reply time, in milliseconds.
    pub rtt_ms_min: Option<f64>,
    /// Median arrival-to-reply time, in milliseconds.
    pub rtt_ms_median: Option<f64>,
    /// Largest arrival-to-reply time, in milliseconds.
    pub rtt_ms_max: Option<f64>,
    /// Median hand-over-to-WRITE time (the agent's thinking), in milliseconds.
    pub agent_ms_median: Option<f64>,
    /// Median arrival-to-hand-over time (waiting in the queue), in milliseconds.
    pub queue_ms_median: Option<f64>,
    /// Median WRITE-to-device time (the bridge's own share), in microseconds.
    pub write_us_median: Option<f64>,
}

impl Summary {
    /// Summarises the entries of one record file.
    pub fn from_entries(entries: &[Entry]) -> Summary {
        let mut s = Summary::default();
        for e in entries {
            s.count(e);
        }
        let rtt = finite(entries, |e| e.rtt_ms);
        s.rtt_ms_min = rtt.first().copied();
        s.rtt_ms_max = rtt.last().copied();
        s.rtt_ms_median = median(&rtt);
        s.agent_ms_median = median(&finite(entries, |e| e.agent_ms));
        s.queue_ms_median = median(&finite(entries, |e| e.queue_ms));
        s.write_us_median = median(&finite(entries, |e| e.write_us));
        s
    }

    /// Share of pings answered validly, in percent; None when there were no pings.
    pub fn valid_pct(&self) -> Option<f64> {
        (self.pings > 0).then(|| 100.0 * self.valid as f64 / self.pings as f64)
    }

    fn count(&mut self, e: &Entry) {
        // A line that summarises drops stands for `count` requests.
        let n = usize::try_from(e.count.unwrap_or(1)).unwrap_or(usize::MAX);
        match e.outcome {
            Outcome::Unmatched => {
                self.unmatched += n;
                return;
            }
            Outcome::NotForAgent => {
                self.not_for_agent += n;
                return;
            }
            Outcome::Answered | Outcome::Refused => self.answered += n,
            Outcome::Stale => self.stale += n,
            Outcome::Overflow => self.overflow += n,
            Outcome::Unanswered => self.unanswered += n,
        }
        self.pings += n;
        match e.verdict.as_deref() {
            None => {}
            Some("valid") => self.valid += 1,
            Some(reason) => {
                self.invalid += 1;
                let class = e.class.clone().unwrap_or_else(|| legacy_class(reason));
                *self.invalid_by_class.entry(class).or_default() += 1;
                *self
                    .invalid_by_reason
                    .entry(reason.to_string())
                    .or_default() += 1;
            }
        }
    }
}

/// The class of a verdict in a record written before lines had a `class`: its text
/// before the first ':', trimmed.
fn legacy_class(reason: &str) -> String {
    reason
        .split(':')
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

/// The finite values of one field, sorted ascending.
fn finite(entries: &[Entry], field: impl Fn(&Entry) -> Option<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = entries
        .iter()
        .filter_map(field)
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// How [`render`] lays out the summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns aligned for a terminal.
    #[default]
    Text,
    /// A GitHub Markdown table.
    Markdown,
    /// A JSON array of `{"label": ..., <summary fields>}` objects.
    Json,
}

/// Renders summaries side by side: one column per (label, summary), one row per metric.
pub fn render(columns: &[(String, Summary)], format: Format) -> String {
    match format {
        Format::Text => text_table(&rows(columns)),
        Format::Markdown => markdown_table(&rows(columns)),
        Format::Json => json(columns),
    }
}

/// Loads each record file, labels it by file stem and renders the summaries.
pub fn run(paths: &[PathBuf], format: Format) -> Result<String, ReportError> {
    let labels = labels(paths);
    let mut columns = Vec::with_capacity(paths.len());
    for (path, label) in paths.iter().zip(labels) {
        columns.push((label, Summary::from_entries(&load(path)?)));
    }
    Ok(render(&columns, format))
}

/// Column labels: file stems, or the paths as given when two stems collide.
fn labels(paths: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let stems: Vec<String> = paths.iter().map(stem).collect();
    let unique = stems.iter().collect::<BTreeSet<_>>().len() == stems.len();
    if unique {
        stems
    } else {
        paths.iter().map(|p| p.display().to_string()).collect()
    }
}

/// The table as rows of cells; the first row is the header.
fn rows(columns: &[(String, Summary)]) -> Vec<Vec<String>> {
    let mut rows = vec![header(columns)];
    let count =
        |label: &str, f: &dyn Fn(&Summary) -> usize| row(label, columns, |s| f(s).to_string());
    let ms =
        |label: &str, f: &dyn Fn(&Summary) -> Option<f64>| row(label, columns, |s| number(f(s)));
    rows.push(count("pings", &|s| s.pings));
    rows.push(count("answered", &|s| s.answered));
    rows.push(count("valid", &|s| s.valid));
    rows.push(row("valid %", columns, |s| {
        s.valid_pct().map_or("-".into(), |p| format!("{p:.1}"))
    }));
    rows.push(count("invalid", &|s| s.invalid));
    let classes: BTreeSet<&String> = columns
        .iter()
        .flat_map(|(_, s)| s.invalid_by_class.keys())
        .collect();
    for c in classes {
        let label = format!("invalid: {c}");
        rows.push(count(&label, &|s| {
            s.invalid_by_class.get(c).copied().unwrap_or(0)
        }));
    }
    rows.push(count("stale", &|s| s.stale));
    rows.push(count("overflow", &|s| s.overflow));
    rows.push(count("unanswered", &|s| s.unanswered));
    rows.push(count("unmatched", &|s| s.unmatched));
    rows.push(count("not for agent", &|s| s.not_for_agent));
    rows.push(ms("rtt ms min", &|s| s.rtt_ms_min));
    rows.push(ms("rtt ms median", &|s| s.rtt_ms_median));
    rows.push(ms("rtt ms max", &|s| s.rtt_ms_max));
    rows.push(ms("agent ms median", &|s| s.agent_ms_median));
    rows.push(ms("queue ms median", &|s| s.queue_ms_median));
    rows.push(ms("write us median", &|s| s.write_us_median));
    rows
}

fn header(columns: &[(String, Summary)]) -> Vec<String> {
    let mut h = vec!["metric".to_string()];
    h.extend(columns.iter().map(|(label, _)| label.clone()));
    h
}

fn row(
    label: &str,
    columns: &[(String, Summary)],
    cell: impl Fn(&Summary) -> String,
) -> Vec<String> {
    let mut r = vec![label.to_string()];
    r.extend(columns.iter().map(|(_, s)| cell(s)));
    r
}

/// A latency figure with precision to suit its size; "-" when missing.
fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// Terminal text: labels left-aligned, values right-aligned, two spaces between columns.
fn text_table(rows: &[Vec<String>]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..rows[0].len()).map(width).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = format!("{:<w$}", r[0], w = widths[0]);
        for (cell, w) in r.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A GitHub Markdown table, values right-aligned; '|' in cells is escaped.
fn markdown_table(rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let escape = |r: &Vec<String>| r.iter().map(|c| c.replace('|', "\\|")).collect();
    let mut out = line(escape(&rows[0]));
    let mut rule = vec!["---".to_string()];
    rule.extend((1..rows[0].len()).map(|_| "---:".to_string()));
    out.push_str(&line(rule));
    for r in &rows[1..] {
        out.push_str(&line(escape(r)));
    }
    out
}

/// A pretty JSON array, one object per column: the label and the summary's fields.
fn json(columns: &[(String, Summary)]) -> String {
    #[derive(Serialize)]
    struct Column<'a> {
        label: &'a str,
        #[serde(flatten)]
        summary: &'a Summary,
    }
    let list: Vec<Column> = columns
        .iter()
        .map(|(label, summary)| Column { label, summary })
        .collect();
    // Serialising plain structs, strings and maps to a String cannot fail.
    let mut out = serde_json::to_string_pretty(&list).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testdir::TestDir;

    /// A hand-written record: 3 answered (one invalid), one refused, one stale,
    /// one overflow, one unanswered, one unmatched, and a blank line.
    static CLAUDE: &str = r#"{"arrival":"2024-05-01T12:00:00.000Z","id":1,"seq":1,"len":84,"outcome":"answered","queue_ms":1.0,"agent_ms":3000.0,"rtt_ms":3001.0,"write_us":40.0,"verdict":"valid","written":true}
{"arrival":"2024-05-01T12:00:01.000Z","id":1,"seq":2,"len":84,"outcome":"answered","queue_ms":2.0,"agent_ms":5000.0,"rtt_ms":5002.0,"write_us":60.0,"verdict":"valid","written":true}
{"arrival":"2024-05-01T12:00:02.000Z","id":1,"seq":3,"len":84,"outcome":"answered","queue_ms":3.0,"agent_ms":4000.0,"rtt_ms":4003.0,"write_us":50.0,"verdict":"bad ICMP checksum: got 0x1234, want 0x4321","class":"icmp_checksum","written":true}

{"arrival":"2024-05-01T12:00:03.000Z","id":1,"seq":4,"len":84,"outcome":"refused","queue_ms":4.0,"agent_ms":6000.0,"rtt_ms":null,"write_us":null,"verdict":"bad ICMP checksum: got 0x0000, want 0x4321","class":"icmp_checksum","written":false}
{"arrival":"2024-05-01T12:00:04.000Z","id":1,"seq":5,"len":84,"outcome":"stale","queue_ms":null,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":null,"written":false}
{"arrival":"2024-05-01T12:00:05.000Z","id":1,"seq":6,"len":84,"outcome":"overflow","queue_ms":null,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":null,"written":false}
{"arrival":"2024-05-01T12:00:06.000Z","id":1,"seq":7,"len":84,"outcome":"unanswered","queue_ms":7.0,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":null,"written":false,"note":"agent gave up"}
{"arrival":"2024-05-01T12:00:07.000Z","id":9,"seq":9,"len":84,"outcome":"unmatched","queue_ms":null,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":"valid","written":false}
"#;

    /// A native agent's record: two valid answers, an even count for the medians.
    static NATIVE: &str = r#"{"arrival":"2024-05-01T12:00:00.000Z","id":2,"seq":1,"len":84,"outcome":"answered","queue_ms":0.5,"agent_ms":0.25,"rtt_ms":0.75,"write_us":30.0,"verdict":"valid","written":true}
{"arrival":"2024-05-01T12:00:01.000Z","id":2,"seq":2,"len":84,"outcome":"answered","queue_ms":0.25,"agent_ms":0.75,"rtt_ms":1.25,"write_us":50.0,"verdict":"valid","written":true}
"#;

    fn write_file(dir: &TestDir, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn summary(text: &str, name: &str) -> Summary {
        let dir = TestDir::new("report");
        Summary::from_entries(&load(write_file(&dir, name, text)).unwrap())
    }

    #[test]
    fn counts() {
        let s = summary(CLAUDE, "counts.jsonl");
        assert_eq!((s.pings, s.answered, s.valid, s.invalid), (7, 4, 2, 2));
        assert_eq!(
            (s.stale, s.overflow, s.unanswered, s.unmatched),
            (1, 1, 1, 1)
        );
        assert_eq!(s.invalid_by_class["icmp_checksum"], 2);
        assert_eq!(s.invalid_by_reason.len(), 2);
        assert_eq!(s.valid_pct(), Some(100.0 * 2.0 / 7.0));
    }

    #[test]
    fn a_summary_line_of_drops_counts_as_many_pings() {
        let drops = r#"{"arrival":"2024-05-01T12:00:00.000Z","id":null,"seq":null,"len":0,"outcome":"overflow","queue_ms":null,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":null,"written":false,"count":500}
{"arrival":"2024-05-01T12:00:00.000Z","id":null,"seq":null,"len":0,"outcome":"stale","queue_ms":null,"agent_ms":null,"rtt_ms":null,"write_us":null,"verdict":null,"written":false,"count":16}
"#;
        let s = summary(&format!("{NATIVE}{drops}"), "drops.jsonl");
        assert_eq!(
            (s.pings, s.answered, s.overflow, s.stale),
            (518, 2, 500, 16)
        );
    }

    #[test]
    fn medians_odd_and_even() {
        let s = summary(CLAUDE, "odd.jsonl");
        // rtt: 3001, 4003, 5002 (odd); agent: 3000, 4000, 5000, 6000 (even).
        assert_eq!(s.rtt_ms_min, Some(3001.0));
        assert_eq!(s.rtt_ms_median, Some(4003.0));
        assert_eq!(s.rtt_ms_max, Some(5002.0));
        assert_eq!(s.agent_ms_median, Some(4500.0));
        // queue: 1, 2, 3, 4, 7 (odd).
        assert_eq!(s.queue_ms_median, Some(3.0));
        let n = summary(NATIVE, "even.jsonl");
        assert_eq!(n.rtt_ms_median, Some(1.0));
        assert_eq!(n.write_us_median, Some(40.0));
    }

    #[test]
    fn empty_file() {
        let dir = TestDir::new("report");
        let path = write_file(&dir, "empty.jsonl", "\n  \n");
        let s = Summary::from_entries(&load(path).unwrap());
        assert_eq!(s, Summary::default());
        assert_eq!(s.valid_pct(), None);
        let text = render(&[("empty".into(), s)], Format::Text);
        assert!(text
            .lines()
            .any(|l| l.split_whitespace().eq(["rtt", "ms", "median", "-"])));
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let text = format!("{}\n{{\"arrival\": 3}}\n", NATIVE.lines().next().unwrap());
        let dir = TestDir::new("report");
        let path = write_file(&dir, "bad.jsonl", &text);
        let err = load(&path).unwrap_err();
        assert!(
            matches!(err, ReportError::BadLine { line: 2, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg == format!(
                "{}:2:13: not a record entry: invalid type: integer `3`, expected a string",
                path.display()
            ),
            "{msg}"
        );
    }

    #[test]
    fn missing_file() {
        let err = load("/nonexistent/tunbridge.jsonl").unwrap_err();
        assert!(matches!(err, ReportError::Open { .. }));
    }

    #[test]
    fn two_columns_text() {
        let dir = TestDir::new("report");
        let a = write_file(&dir, "claude.jsonl", CLAUDE);
        let b = write_file(&dir, "native.jsonl", NATIVE);
        let out = run(&[a, b], Format::Text).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["metric", "claude", "native"]
        );
        let cells = |label: &str| -> Vec<String> {
            let line = lines.iter().find(|l| l.starts_with(label)).unwrap();
            line[label.len()..]
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(cells("pings "), ["7", "2"]);
        assert_eq!(cells("invalid: icmp_checksum"), ["2", "0"]);
        assert_eq!(cells("rtt ms median"), ["4003", "1.00"]);
        assert_eq!(cells("valid %"), ["28.6", "100.0"]);
        // Every line is as wide as the header: values are right-aligned.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{out}");
    }

    #[test]
    fn markdown_table() {
        let cols = vec![
            ("a|b".to_string(), summary(CLAUDE, "md1.jsonl")),
            ("native".to_string(), summary(NATIVE, "md2.jsonl")),
        ];
        let out = render(&cols, Format::Markdown);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], r"| metric | a\|b | native |");
        assert_eq!(lines[1], "| --- | ---: | ---: |");
        assert!(lines.contains(&"| stale | 1 | 0 |"), "{out}");
        assert!(lines.contains(&"| rtt ms min | 3001 | 0.75 |"), "{out}");
        assert!(lines
            .iter()
            .all(|l| l.starts_with("| ") && l.ends_with(" |")));
    }

    #[test]
    fn json_array() {
        let cols = vec![
            ("claude".to_string(), summary(CLAUDE, "j1.jsonl")),
            ("empty".to_string(), Summary::default()),
        ];
        let out = render(&cols, Format::Json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["label"], "claude");
        assert_eq!(list[0]["pings"], 7);
        assert_eq!(list[0]["invalid_by_class"]["icmp_checksum"], 2);
        assert_eq!(list[0]["agent_ms_median"], 4500.0);
        assert!(list[1]["rtt_ms_median"].is_null());
    }

    #[test]
    fn labels_fall_back_to_paths_when_stems_collide() {
        let paths = [PathBuf::from("a/run.jsonl"), PathBuf::from("b/run.jsonl")];
        assert_eq!(labels(&paths), ["a/run.jsonl", "b/run.jsonl"]);
        let paths = [PathBuf::from("a/x.jsonl"), PathBuf::from("b/y.jsonl")];
        assert_eq!(labels(&paths), ["x", "y"]);
    }

    #[test]
    fn legacy_reason_class() {
        assert_eq!(
            legacy_class("bad ICMP checksum: got 1, want 2"),
            "bad ICMP checksum"
        );
        assert_eq!(legacy_class("not an echo reply"), "not an echo reply");
    }

    #[test]
    fn one_row_per_class_not_per_detail() {
        let line = |seq: u8, verdict: &str, class: &str| {
            format!(
                r#"{{"arrival":"2024-05-01T12:00:0{seq}.000Z","id":1,"seq":{seq},"len":84,"outcome":"answered","queue_ms":1.0,"agent_ms":1.0,"rtt_ms":2.0,"write_us":40.0,"verdict":"{verdict}","class":"{class}","written":true}}"#
            )
        };
        let text = [
            line(
                1,
                "payload differs at byte 12: got 0x41, want 0x00",
                "payload",
            ),
            line(
                2,
                "payload differs at byte 13: got 0x41, want 0x00",
                "payload",
            ),
            line(3, "wrong source 192.0.2.1, want 192.0.2.2", "address"),
            line(4, "wrong destination 192.0.2.3, want 192.0.2.1", "address"),
        ]
        .join("\n");
        let s = summary(&text, "classes.jsonl");
        assert_eq!(s.invalid_by_class.len(), 2, "{:?}", s.invalid_by_class);
        assert_eq!(s.invalid_by_class["payload"], 2);
        assert_eq!(s.invalid_by_class["address"], 2);
        assert_eq!(s.invalid_by_reason.len(), 4);
        let out = render(&[("run".into(), s)], Format::Text);
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("invalid:")).collect();
        assert_eq!(rows.len(), 2, "{out}");
    }
}
