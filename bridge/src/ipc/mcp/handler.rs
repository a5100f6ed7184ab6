//! What the server does with each message: the MCP lifecycle (`initialize` and the version
//! it settles on), `ping`, `tools/list`, `tools/call` and cancellation. No I/O: a tool call
//! comes back as the bridge commands to run ([`Action::Call`]), and the loop in
//! [`super::run`] runs them.

use serde_json::{json, Value};
use tracing::debug;

use super::jsonrpc::{self, code, Message};
use super::tools::{self, Tool};

/// The MCP revisions this server speaks, newest first. Claude Code 2.1.197 and 2.1.332 ask
/// for 2025-11-25 (2.1.332 first probes `server/discover` of 2026-07-28, whose
/// per-request form this server does not speak; it answers "method not found", and the
/// client falls back to `initialize`).
pub const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The one revision that has JSON-RPC batches (added in 2025-03-26, gone in 2025-06-18).
const BATCH_VERSION: &str = "2025-03-26";

/// What to do for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this response now.
    Respond(Value),
    /// Send these command lines to the bridge, then respond to request `id` with
    /// [`tools::outcome`] of their answers.
    Call { id: Value, commands: Vec<String> },
    /// Request `id` was cancelled: drop its call and never respond to it.
    Cancel(Value),
    /// Nothing (a notification).
    Nothing,
}

/// The state of one MCP session: the revision settled on, if any yet.
#[derive(Debug, Default)]
pub struct Handler {
    version: Option<&'static str>,
}

impl Handler {
    /// A session before `initialize`.
    pub fn new() -> Handler {
        Handler::default()
    }

    /// The revision settled on by `initialize`.
    pub fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// Whether a batch is a valid message in the revision settled on.
    pub fn batches_allowed(&self) -> bool {
        self.version == Some(BATCH_VERSION)
    }

    /// What to do for one message.
    pub fn handle(&mut self, message: Message) -> Action {
        match message {
            Message::Request { id, method, params } => self.request(id, &method, &params),
            Message::Notification { method, params } => notification(&method, &params),
            Message::Response => Action::Nothing,
        }
    }

    fn request(&mut self, id: Value, method: &str, params: &Option<Value>) -> Action {
        let fields = jsonrpc::fields(params);
        let answer = match method {
            "initialize" => self.initialize(&fields),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tools::ALL.map(Tool::definition)})),
            "tools/call" => return call(id, &fields),
            _ => Err((
                code::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        };
        Action::Respond(match answer {
            Ok(result) => jsonrpc::result(&id, result),
            Err((code, message)) => jsonrpc::error(&id, code, &message),
        })
    }

    /// Settles on the client's revision when this server speaks it, else on the newest
    /// this server speaks (the client then decides whether it can go on).
    fn initialize(
        &mut self,
        fields: &serde_json::Map<String, Value>,
    ) -> Result<Value, (i64, String)> {
        let Some(asked) = fields.get("protocolVersion").and_then(Value::as_str) else {
            return Err((
                code::INVALID_PARAMS,
                "initialize needs params.protocolVersion".into(),
            ));
        };
        let version = VERSIONS
            .into_iter()
            .find(|v| *v == asked)
            .unwrap_or(VERSIONS[0]);
        debug!(asked, version, "initialize");
        self.version = Some(version);
        Ok(json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {
                "name": "tunbridge",
                "title": "tunbridge: a TUN device as MCP tools",
                "version": env!("CARGO_PKG_VERSION"),
            },
        }))
    }
}

/// A `tools/call`: the commands to run, or the error it earns at once.
fn call(id: Value, fields: &serde_json::Map<String, Value>) -> Action {
    let Some(name) = fields.get("name").and_then(Value::as_str) else {
        let e = jsonrpc::error(&id, code::INVALID_PARAMS, "tools/call needs params.name");
        return Action::Respond(e);
    };
    let Some(tool) = Tool::named(name) else {
        let why = format!("unknown tool: {name}");
        return Action::Respond(jsonrpc::error(&id, code::INVALID_PARAMS, &why));
    };
    let arguments = fields.get("arguments").cloned().unwrap_or(json!({}));
    match tool.commands(&arguments) {
        Ok(commands) => Action::Call { id, commands },
        Err(result) => Action::Respond(jsonrpc::result(&id, result)),
    }
}

fn notification(method: &str, params: &Option<Value>) -> Action {
    match method {
        "notifications/cancelled" => match jsonrpc::fields(params).remove("requestId") {
            Some(id) => Action::Cancel(id),
            None => Action::Nothing,
        },
        // `notifications/initialized` and any other: nothing to do.
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn request(method: &str, params: Value) -> Message {
        Message::Request {
            id: json!(1),
            method: method.into(),
            params: Some(params),
        }
    }

    fn respond(action: Action) -> Value {
        match action {
            Action::Respond(v) => v,
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn initialize_echoes_a_version_it_speaks_and_offers_its_newest_otherwise() {
        for asked in VERSIONS {
            let mut h = Handler::new();
            let r = respond(h.handle(request("initialize", json!({"protocolVersion": asked}))));
            assert_eq!(r["result"]["protocolVersion"], asked);
            assert_eq!(r["result"]["capabilities"]["tools"]["listChanged"], false);
            assert_eq!(r["result"]["serverInfo"]["name"], "tunbridge");
            assert_eq!(h.version(), Some(asked));
        }
        let mut h = Handler::new();
        let r = respond(h.handle(request(
            "initialize",
            json!({"protocolVersion": "2026-07-28"}),
        )));
        assert_eq!(r["result"]["protocolVersion"], VERSIONS[0]);
        let r = respond(h.handle(request("initialize", json!({}))));
        assert_eq!(r["error"]["code"], code::INVALID_PARAMS);
    }

    #[test]
    fn batches_only_in_the_revision_that_has_them() {
        let mut h = Handler::new();
        assert!(!h.batches_allowed());
        h.handle(request(
            "initialize",
            json!({"protocolVersion": "2025-03-26"}),
        ));
        assert!(h.batches_allowed());
        h.handle(request(
            "initialize",
            json!({"protocolVersion": "2025-06-18"}),
        ));
        assert!(!h.batches_allowed());
    }

    #[test]
    fn unknown_methods_and_the_modern_probe_are_not_found() {
        let mut h = Handler::new();
        for method in ["server/discover", "resources/list", "prompts/list", "nope"] {
            let r = respond(h.handle(request(method, json!({}))));
            assert_eq!(r["error"]["code"], code::METHOD_NOT_FOUND, "{method}");
            assert_eq!(r["id"], 1);
        }
    }

    #[test]
    fn ping_and_tools_list() {
        let mut h = Handler::new();
        assert_eq!(
            respond(h.handle(request("ping", json!({}))))["result"],
            json!({})
        );
        let r = respond(h.handle(request("tools/list", json!({"cursor": "x"}))));
        let names: Vec<_> = r["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["read_packet", "write_packet", "write_and_read_next"]
        );
        assert!(r["result"].get("nextCursor").is_none());
    }

    #[test]
    fn tool_calls_become_commands_or_errors() {
        let mut h = Handler::new();
        let call = |name: &str, args: Value| {
            request("tools/call", json!({"name": name, "arguments": args}))
        };
        assert_eq!(
            h.handle(call("write_and_read_next", json!({"hex": "45"}))),
            Action::Call {
                id: json!(1),
                commands: vec!["WRITE 45".into(), "READ".into()]
            }
        );
        // No arguments at all: fine for a tool that takes none.
        assert_eq!(
            h.handle(request("tools/call", json!({"name": "read_packet"}))),
            Action::Call {
                id: json!(1),
                commands: vec!["READ".into()]
            }
        );
        let r = respond(h.handle(call("rm_rf", json!({}))));
        assert_eq!(r["error"]["code"], code::INVALID_PARAMS);
        assert!(r["error"]["message"].as_str().unwrap().contains("rm_rf"));
        let r = respond(h.handle(request("tools/call", json!({}))));
        assert_eq!(r["error"]["code"], code::INVALID_PARAMS);
        let r = respond(h.handle(call("write_packet", json!({}))));
        assert_eq!(r["result"]["isError"], true);
    }

    #[test]
    fn notifications_get_nothing_but_a_cancel_names_its_request() {
        let mut h = Handler::new();
        let note = |method: &str, params| Message::Notification {
            method: method.into(),
            params,
        };
        assert_eq!(
            h.handle(note("notifications/initialized", None)),
            Action::Nothing
        );
        assert_eq!(h.handle(note("ping", None)), Action::Nothing);
        assert_eq!(
            h.handle(note(
                "notifications/cancelled",
                Some(json!({"requestId": "a", "reason": "user"}))
            )),
            Action::Cancel(json!("a"))
        );
        assert_eq!(
            h.handle(note("notifications/cancelled", None)),
            Action::Nothing
        );
        assert_eq!(h.handle(Message::Response), Action::Nothing);
    }
}
