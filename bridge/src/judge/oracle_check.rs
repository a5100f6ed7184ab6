//! Unit tests only: the reference stack's replies, and the kernel's, against the etherparse
//! oracle (`bridge/tests/common/oracle.rs`), so that the wire code and the reference stack
//! cannot agree with themselves on a wrong answer, and the oracle is seen to refuse.

use crate::judge::stack;
use crate::oracle::{assert_reply, check_reply};
use crate::wire::fixtures::*;

/// Requests captured from the kernel, with the kernel's own replies.
fn pairs() -> impl Iterator<Item = (&'static [u8], &'static [u8])> {
    ECHO_PAIRS.into_iter().chain(KERNEL_PAIRS)
}

#[test]
fn the_kernel_replies_agree_with_the_oracle() {
    for (request, kernel) in pairs() {
        assert_reply(request, kernel);
    }
}

#[test]
fn every_reference_reply_agrees_with_the_oracle() {
    for (request, _) in pairs() {
        let owed = stack::owed(request).expect("a reply is owed");
        assert_reply(request, &owed);
    }
}

#[test]
fn the_oracle_refuses_spoiled_replies() {
    for (request, _) in pairs() {
        let reply = stack::owed(request).unwrap();
        // A flipped bit anywhere in the last byte breaks a checksum or the data.
        let mut spoiled = reply.clone();
        *spoiled.last_mut().unwrap() ^= 1;
        assert!(check_reply(request, &spoiled).is_err());
        // A reply to itself is never right: the addresses are not swapped.
        assert!(check_reply(request, request).is_err());
    }
    // A reset is owed nothing, and a reply to a reply is no reply.
    assert!(check_reply(&TCP4_RST, &TCP4_SYN).is_err());
    assert!(check_reply(&REPLY_56, &REQUEST_56).is_err());
}
