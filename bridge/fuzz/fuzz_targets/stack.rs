//! Any bytes as a request to the reference stack (IPv4 and IPv6; ICMP, ICMPv6, UDP, TCP),
//! and any bytes as another stack's answer: never a panic, and whatever reply the stack
//! owes, built with the reference's own choices or with any stack's free choices (TTL,
//! identification, flow label, window, ...), the judge calls valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunbridge::judge::exchange::{Request, Response};
use tunbridge::judge::stack::{self, Choices};
use tunbridge::judge::verdict::{self, Verdict};

fuzz_target!(|data: &[u8]| {
    // The first two bytes say where the request ends and the other stack's answer begins.
    let (split, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return,
    };
    let (request, answer) = rest.split_at(split.min(rest.len()));

    let parsed = Request::parse(request);
    if let Ok(response) = Response::parse(answer.to_vec()) {
        let _ = verdict::judge(&parsed, &response);
    }
    let _ = verdict::judge_packets(request, answer);

    let choices = Choices::of(answer);
    match stack::owed(request) {
        Ok(reply) => {
            assert_eq!(
                verdict::judge_packets(request, &reply),
                Verdict::Valid,
                "the reference reply is not valid"
            );
            let chosen = stack::owed_with(request, &choices).expect("owed once, owed always");
            assert_eq!(
                verdict::judge_packets(request, &chosen),
                Verdict::Valid,
                "a reply with another stack's free choices {choices:?} is not valid"
            );
        }
        Err(silence) => {
            assert!(matches!(
                verdict::judge_packets(request, answer),
                Verdict::NoReplyOwed(_) | Verdict::Malformed(_)
            ));
            let _ = silence.class();
        }
    }
});
