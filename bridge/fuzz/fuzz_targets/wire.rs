//! Any bytes into the packet checks, the accessors, the reference reply and the verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunbridge::judge::exchange::Request;
use tunbridge::ipc::protocol::check_packet;
use tunbridge::wire::{self, icmpv4, ipv4};
use tunbridge::judge::verdict::{self, Verdict};

fuzz_target!(|data: &[u8]| {
    let _ = check_packet(data.to_vec(), 1500);
    let _ = Request::parse(data);
    if let Ok(ip) = ipv4::Packet::new_checked(data) {
        let _ = (ip.version(), ip.ihl(), ip.dscp_ecn(), ip.total_len(), ip.ident());
        let _ = (ip.flags_frag(), ip.frag_offset(), ip.ttl(), ip.protocol(), ip.checksum());
        let _ = (ip.src_addr(), ip.dst_addr(), ip.options(), ip.verify_checksum());
        if let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) {
            let _ = (icmp.msg_type(), icmp.code(), icmp.echo_ident(), icmp.echo_seq_no());
            let _ = (icmp.data(), icmp.verify_checksum());
        }
    }
    if let Ok(reply) = wire::echo_reply(data) {
        assert_eq!(verdict::judge_packets(data, &reply), Verdict::Valid);
    }
    // The first half as a request, the second as the agent's reply.
    let (request, reply) = data.split_at(data.len() / 2);
    let _ = verdict::judge_packets(request, reply);
});
