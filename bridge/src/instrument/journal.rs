//! The journal: where the daemon's threads leave what happened, the JSONL record
//! (one line per request) and the pcap capture (every packet in and out).
//! Both are optional; a failed write is logged and never stops the bridge.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::instrument::pcap::PcapWriter;
use crate::instrument::record::{Entry, Recorder};

/// The record and capture files, shared by the daemon's threads.
#[derive(Default)]
pub struct Journal {
    record: Mutex<Option<Recorder>>,
    pcap: Mutex<Option<PcapWriter>>,
}

impl Journal {
    /// Opens the files that were asked for.
    pub fn open(record: Option<&Path>, pcap: Option<&Path>) -> std::io::Result<Journal> {
        let record = record.map(Recorder::open).transpose();
        let record = record.map_err(std::io::Error::other)?;
        let pcap = pcap.map(PcapWriter::create).transpose()?;
        Ok(Journal {
            record: Mutex::new(record),
            pcap: Mutex::new(pcap),
        })
    }

    /// Appends one request's line to the record.
    pub fn entry(&self, entry: &Entry) {
        let mut guard = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rec) = guard.as_mut() {
            if let Err(error) = rec.record(entry) {
                tracing::warn!(%error, "could not append to the record");
            }
        }
    }

    /// Adds one packet, in or out, to the capture.
    pub fn packet(&self, ts: SystemTime, packet: &[u8]) {
        let mut guard = self.pcap.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pcap) = guard.as_mut() {
            if let Err(error) = pcap.write(ts, packet) {
                tracing::warn!(%error, "could not append to the capture");
            }
        }
    }
}
