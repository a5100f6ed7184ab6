//! What is kept of a run, and read back: the record (one JSON line per request), the
//! journal that writes it and the capture, `tunbridge report` and `tunbridge timeline`.
pub mod journal;
pub mod pcap;
pub mod record;
pub mod report;
pub mod timeline;
