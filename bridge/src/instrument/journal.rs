//! The journal: where the daemon leaves what happened, the JSONL record (one line per
//! request) and the pcap capture (every packet in and out).
//! Both are optional; a failed write is logged and never stops the bridge.

use std::path::Path;
use std::time::SystemTime;

use crate::instrument::pcap::PcapWriter;
use crate::instrument::record::{Entry, Recorder};

/// The record and capture files, those that were asked for.
#[derive(Debug, Default)]
pub struct Journal {
    record: Option<Recorder>,
    pcap: Option<PcapWriter>,
}

impl Journal {
    /// Opens the files that were asked for.
    pub fn open(record: Option<&Path>, pcap: Option<&Path>) -> std::io::Result<Journal> {
        let record = record.map(Recorder::open).transpose();
        let record = record.map_err(std::io::Error::other)?;
        let pcap = pcap.map(PcapWriter::create).transpose()?;
        Ok(Journal { record, pcap })
    }

    /// Appends one request's line to the record.
    pub fn entry(&mut self, entry: &Entry) {
        if let Some(rec) = self.record.as_mut() {
            if let Err(error) = rec.record(entry) {
                tracing::warn!(%error, "could not append to the record");
            }
        }
    }

    /// Adds one packet, in or out, to the capture.
    pub fn packet(&mut self, ts: SystemTime, packet: &[u8]) {
        if let Some(pcap) = self.pcap.as_mut() {
            if let Err(error) = pcap.write(ts, packet) {
                tracing::warn!(%error, "could not append to the capture");
            }
        }
    }
}
