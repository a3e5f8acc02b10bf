//! Times one delivery of a campaign CSV into a fresh SQLite database: the SQLite sink
//! alone (history + latest), without the download and the orchestrator's validation.
//! `cargo xtask bench` runs it next to `sqlite3 .import` of the same file.
//!
//! ```text
//! cargo run --release -p connectly-sink-sqlite --example sqlite_load_measure -- FILE.csv DB
//! ```
//!
//! Hashes the file first (not timed, as the orchestrator does while downloading), then
//! delivers it and prints one JSON line: `{"seconds": …, "rows": …}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::Instant;

use connectly_sink::{RunData, RunInfo, Sink};
use connectly_sink_sqlite::SqliteSink;
use sha2::{Digest, Sha256};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(csv), Some(db)) = (args.next(), args.next()) else {
        eprintln!("usage: sqlite_load_measure FILE.csv DB");
        std::process::exit(2);
    };
    let path = std::path::PathBuf::from(csv);
    let mut file = std::fs::File::open(&path).expect("open the CSV");
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buf).expect("read the CSV");
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let data = RunData {
        path,
        bytes,
        sha256: hex::encode(sha.finalize()),
        // Only compared with the rows read (a warning when they differ).
        rows: lines.saturating_sub(1),
    };
    let run = RunInfo {
        business_id: "bench".into(),
        report_id: "bench".into(),
        report_name: "bench".into(),
        report_type: "campaign.daily.v1".into(),
        run_id: "bench-run-1".into(),
        completed_at: time::OffsetDateTime::now_utc(),
    };
    let sink = SqliteSink::new(db);
    let started = Instant::now();
    sink.deliver(&run, &data).await.expect("deliver");
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"seconds\": {seconds:.3}, \"rows\": {}}}", data.rows);
}
