//! JSON-RPC 2.0 messages, as MCP uses them: one line in, parsed once into a request, a
//! notification or a batch of them, or into the error response it earns.
//!
//! The rules (JSON-RPC 2.0 §4–6; MCP's base protocol): a request has `"jsonrpc": "2.0"`, a
//! string `method` and an `id` that is a string or a number (MCP forbids `null`); without
//! an `id` it is a notification, which is never answered; `params`, when given, is an
//! object or an array. A line that is not JSON is answered `-32700` with id `null`; JSON
//! that is not a valid message, `-32600`, with the message's id when it has a usable one.
//! Responses from the other side (this server sends no requests) are passed over. Nothing
//! here panics on input.

use serde_json::{json, Map, Value};

/// The JSON-RPC error codes this server answers with.
pub mod code {
    /// Not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method (or not in this server's capabilities).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's parameters are wrong (an unknown tool, a missing protocol version).
    pub const INVALID_PARAMS: i64 = -32602;
}

/// A request or notification, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that wants a response with the same `id`.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A call that wants no response.
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response or error from the other side: nothing to do.
    Response,
}

/// What one line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// One message, or the error response an invalid one earns.
    One(Result<Message, Value>),
    /// A batch (a non-empty array): each member parsed on its own.
    Batch(Vec<Result<Message, Value>>),
}

/// Parses one line (without its newline).
pub fn parse(line: &[u8]) -> Received {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("not JSON: {e}");
            return Received::One(Err(error(&Value::Null, code::PARSE_ERROR, &why)));
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => Received::One(Err(error(
            &Value::Null,
            code::INVALID_REQUEST,
            "an empty batch",
        ))),
        Value::Array(items) => Received::Batch(items.into_iter().map(message).collect()),
        other => Received::One(message(other)),
    }
}

/// One message from a JSON value.
fn message(value: Value) -> Result<Message, Value> {
    let Value::Object(mut obj) = value else {
        return Err(invalid(&Value::Null, "a message is a JSON object"));
    };
    let id = obj.remove("id");
    let usable = |id: &Option<Value>| match id {
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        _ => Value::Null,
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(&usable(&id), "\"jsonrpc\" must be \"2.0\""));
    }
    let Some(method) = obj.remove("method") else {
        if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) {
            return Ok(Message::Response);
        }
        return Err(invalid(&usable(&id), "no \"method\""));
    };
    let Value::String(method) = method else {
        return Err(invalid(&usable(&id), "\"method\" must be a string"));
    };
    let params = obj.remove("params");
    if !matches!(params, None | Some(Value::Object(_) | Value::Array(_))) {
        return Err(invalid(
            &usable(&id),
            "\"params\" must be an object or an array",
        ));
    }
    match id {
        None => Ok(Message::Notification { method, params }),
        Some(id @ (Value::String(_) | Value::Number(_))) => {
            Ok(Message::Request { id, method, params })
        }
        Some(_) => Err(invalid(&Value::Null, "\"id\" must be a string or a number")),
    }
}

fn invalid(id: &Value, why: &str) -> Value {
    error(
        id,
        code::INVALID_REQUEST,
        &format!("invalid request: {why}"),
    )
}

/// A success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The object `params` holds, or an empty one (no params, or an array).
pub fn fields(params: &Option<Value>) -> Map<String, Value> {
    match params {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn one(line: &str) -> Result<Message, Value> {
        match parse(line.as_bytes()) {
            Received::One(m) => m,
            other => panic!("not one message: {other:?}"),
        }
    }

    fn error_of(line: &str) -> (Value, i64) {
        let e = one(line).unwrap_err();
        (e["id"].clone(), e["error"]["code"].as_i64().unwrap())
    }

    #[test]
    fn requests_with_ids_of_both_types() {
        let r = one(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert_eq!(
            r,
            Message::Request {
                id: json!(7),
                method: "ping".into(),
                params: None
            }
        );
        let r = one(r#"{"jsonrpc":"2.0","id":"server-discover-probe-1","method":"x","params":{}}"#);
        let Ok(Message::Request { id, params, .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(id, json!("server-discover-probe-1"));
        assert_eq!(params, Some(json!({})));
    }

    #[test]
    fn notifications_have_no_id() {
        let n = one(r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#).unwrap();
        assert_eq!(
            n,
            Message::Notification {
                method: "notifications/initialized".into(),
                params: None
            }
        );
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_a_null_id() {
        for line in [
            "{",
            "",
            "nul",
            "{\"jsonrpc\":\"2.0\",\"id\":1,",
            "\u{feff}{}",
        ] {
            assert_eq!(error_of(line), (Value::Null, code::PARSE_ERROR), "{line:?}");
        }
    }

    #[test]
    fn invalid_requests_keep_a_usable_id() {
        let cases = [
            (r#"{"id":1,"method":"ping"}"#, json!(1)),
            (r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#, json!("a")),
            (r#"{"jsonrpc":"2.0","id":2,"method":5}"#, json!(2)),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"m","params":"x"}"#,
                json!(3),
            ),
            (r#"{"jsonrpc":"2.0","id":4}"#, json!(4)),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                Value::Null,
            ),
            (r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#, Value::Null),
            (r#"[]"#, Value::Null),
            (r#"5"#, Value::Null),
            (r#""ping""#, Value::Null),
        ];
        for (line, id) in cases {
            assert_eq!(error_of(line), (id, code::INVALID_REQUEST), "{line}");
        }
    }

    #[test]
    fn responses_from_the_client_are_passed_over() {
        let r = one(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(r, Message::Response);
        let r = one(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#).unwrap();
        assert_eq!(r, Message::Response);
    }

    #[test]
    fn a_batch_is_parsed_member_by_member() {
        let line = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},7]"#;
        let Received::Batch(items) = parse(line.as_bytes()) else {
            panic!("not a batch")
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], Ok(Message::Request { .. })));
        assert!(matches!(items[1], Ok(Message::Notification { .. })));
        assert_eq!(
            items[2].as_ref().unwrap_err()["error"]["code"],
            json!(-32600)
        );
    }

    #[test]
    fn responses_are_one_line_of_json() {
        let r = result(&json!("x"), json!({"a": "b\nc"}));
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(r["jsonrpc"], "2.0");
        let e = error(&json!(3), code::METHOD_NOT_FOUND, "no such method");
        assert_eq!(e["error"]["code"], -32601);
        assert_eq!(e["id"], 3);
    }
}
