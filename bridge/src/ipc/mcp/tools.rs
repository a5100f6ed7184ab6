//! The three tools: what `tools/list` shows, which bridge commands a `tools/call` becomes,
//! and the result the agent gets. No I/O.
//!
//! A result's text is what `tunbridge read` / `tunbridge write [--next]` print, one line per
//! answer, so a prompt reads the same over Bash or MCP: a packet as hex, `TIMEOUT`, `OK` or
//! `ERR <reason>`; when the bridge could not be reached or stopped answering, a last line
//! `tunbridge: <why>`. The result is an error (`isError: true`) when any line is `ERR` or
//! the exchange failed; `write_and_read_next` still carries the next packet when only its
//! write was refused.

use serde_json::{json, Value};

use crate::ipc::client::Unfinished;

/// A tool of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `READ`: the next packet.
    Read,
    /// `WRITE <hex>`.
    Write,
    /// `WRITE <hex>`, then `READ`, on one connection.
    WriteRead,
}

/// Every tool, in the order `tools/list` gives them.
pub const ALL: [Tool; 3] = [Tool::Read, Tool::Write, Tool::WriteRead];

impl Tool {
    /// The tool's name (an MCP client shows it as `mcp__<server>__<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Read => "read_packet",
            Tool::Write => "write_packet",
            Tool::WriteRead => "write_and_read_next",
        }
    }

    /// The tool named `name`.
    pub fn named(name: &str) -> Option<Tool> {
        ALL.into_iter().find(|t| t.name() == name)
    }

    fn title(self) -> &'static str {
        match self {
            Tool::Read => "Read one packet",
            Tool::Write => "Write one packet",
            Tool::WriteRead => "Write one packet, then read the next",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tool::Read => {
                "Take the next IP packet that arrived on the tunbridge TUN device, as one line \
                 of lowercase hex; or TIMEOUT when none came within the bridge's read timeout \
                 (30 s by default). Each packet is handed out once."
            }
            Tool::Write => {
                "Write one IP packet (your reply) to the tunbridge TUN device. `hex`: the whole \
                 packet as hex digits, no spaces. Answers OK, or ERR <reason> when the bridge \
                 refused it (then nothing was written)."
            }
            Tool::WriteRead => {
                "write_packet, then read_packet, in one call. Answers two lines: the write's \
                 (OK or ERR <reason>), then the next packet as hex, or TIMEOUT. The read \
                 happens even when the write was refused."
            }
        }
    }

    /// The tool as `tools/list` shows it. `anthropic/alwaysLoad` asks Claude Code not to
    /// defer it behind its tool search (which would cost the agent a turn to find it).
    pub fn definition(self) -> Value {
        let schema = match self {
            Tool::Read => json!({"type": "object", "additionalProperties": false}),
            Tool::Write | Tool::WriteRead => json!({
                "type": "object",
                "properties": {"hex": {
                    "type": "string",
                    "description": "The whole IP packet as hex digits, e.g. 4500001c...",
                }},
                "required": ["hex"],
                "additionalProperties": false,
            }),
        };
        json!({
            "name": self.name(),
            "title": self.title(),
            "description": self.description(),
            "inputSchema": schema,
            "annotations": {
                "readOnlyHint": false,
                "destructiveHint": false,
                "idempotentHint": false,
                "openWorldHint": true,
            },
            "_meta": {"anthropic/alwaysLoad": true},
        })
    }

    /// The command lines a call with these arguments sends, or the tool error it earns.
    pub fn commands(self, arguments: &Value) -> Result<Vec<String>, Value> {
        let hex = || match arguments.get("hex") {
            Some(Value::String(hex)) => Ok(hex.clone()),
            Some(_) => Err(failed("`hex` must be a string of hex digits")),
            None => Err(failed("`hex` is missing: give the whole packet as hex")),
        };
        Ok(match self {
            Tool::Read => vec!["READ".into()],
            Tool::Write => vec![format!("WRITE {}", hex()?)],
            Tool::WriteRead => vec![format!("WRITE {}", hex()?), "READ".into()],
        })
    }
}

/// The `tools/call` result for the answers an exchange got.
pub fn outcome(answers: Result<Vec<String>, Unfinished>) -> Value {
    let (mut lines, error) = match answers {
        Ok(lines) => (lines, None),
        Err(Unfinished { answers, error }) => (answers, Some(error)),
    };
    let is_error = error.is_some() || lines.iter().any(|l| l.starts_with("ERR"));
    if let Some(e) = error {
        lines.push(format!("tunbridge: {e}"));
    }
    text(&lines.join("\n"), is_error)
}

/// A tool error with this reason (the arguments were wrong; nothing was sent).
pub fn failed(reason: &str) -> Value {
    text(reason, true)
}

fn text(text: &str, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ipc::client::ClientError;

    #[test]
    fn names_round_trip_and_definitions_are_complete() {
        for tool in ALL {
            assert_eq!(Tool::named(tool.name()), Some(tool));
            let d = tool.definition();
            assert_eq!(d["name"], tool.name());
            assert_eq!(d["inputSchema"]["type"], "object");
            assert!(d["description"].as_str().unwrap().len() > 40);
            assert_eq!(d["_meta"]["anthropic/alwaysLoad"], true);
        }
        assert_eq!(Tool::named("read"), None);
    }

    #[test]
    fn calls_become_bridge_commands() {
        let hex = json!({"hex": "4500"});
        assert_eq!(Tool::Read.commands(&json!({})).unwrap(), ["READ"]);
        assert_eq!(Tool::Write.commands(&hex).unwrap(), ["WRITE 4500"]);
        assert_eq!(
            Tool::WriteRead.commands(&hex).unwrap(),
            ["WRITE 4500", "READ"]
        );
    }

    #[test]
    fn a_missing_or_wrong_hex_is_a_tool_error() {
        for args in [
            json!({}),
            json!({"hex": 45}),
            json!({"hex": null}),
            json!([]),
        ] {
            let e = Tool::Write.commands(&args).unwrap_err();
            assert_eq!(e["isError"], true, "{args}");
            assert!(e["content"][0]["text"].as_str().unwrap().contains("hex"));
        }
    }

    #[test]
    fn results_carry_every_line_and_say_when_something_failed() {
        let ok = outcome(Ok(vec!["OK".into(), "4500".into()]));
        assert_eq!(ok["content"][0]["text"], "OK\n4500");
        assert_eq!(ok["isError"], false);
        let refused = outcome(Ok(vec!["ERR bad hex".into(), "4500".into()]));
        assert_eq!(refused["content"][0]["text"], "ERR bad hex\n4500");
        assert_eq!(refused["isError"], true);
        let cut = outcome(Err(Unfinished {
            answers: vec!["OK".into()],
            error: ClientError::HungUp,
        }));
        let text = cut["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("OK\ntunbridge: the bridge closed"),
            "{text}"
        );
        assert_eq!(cut["isError"], true);
        assert_eq!(outcome(Ok(vec!["TIMEOUT".into()]))["isError"], false);
    }
}
