//! End-to-end: the real `connectly-sync` binary, a vendor stand-in over real HTTP on
//! 127.0.0.1, a real SQLite file and a real folder, read back by independent readers
//! (the `sqlite3` CLI, the csv crate, the bytes on disk).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod crash;
mod faults;
mod malformed;
mod operator;
mod resilience;
mod s3;
mod serve;
mod storage;
mod sync;
mod usage;
