//! Any line into the command parser: an answer, never a panic, always one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunbridge::ipc::protocol::{decode_hex, Command, Answer};

fuzz_target!(|line: &[u8]| {
    if let Err(e) = Command::parse(line, 1500) {
        let answer = Answer::Err(e.to_string()).to_string();
        assert!(answer.starts_with("ERR ") && !answer.contains('\n'));
    }
    if let Ok(text) = std::str::from_utf8(line) {
        let _ = decode_hex(text);
    }
});
