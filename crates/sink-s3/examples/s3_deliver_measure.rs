//! Times one delivery of an existing file with the S3 sink: the upload alone, without
//! the download and the orchestrator's validation. `cargo xtask bench` runs it next to
//! `aws s3 cp` of the same file to the same server.
//!
//! ```text
//! cargo run --release -p connectly-sink-s3 --example s3_deliver_measure -- FILE 's3://BUCKET/PREFIX?endpoint=…'
//! ```
//!
//! Credentials from the standard AWS chain (environment). Hashes the file first (not
//! timed: the orchestrator does it while downloading), then delivers it with the
//! default options and prints one JSON line: `{"seconds": …, "bytes": …}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::Instant;

use connectly_sink::{RunData, RunInfo, Sink};
use connectly_sink_s3::S3Sink;
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(uri)) = (args.next(), args.next()) else {
        eprintln!("usage: s3_deliver_measure FILE S3_URI");
        std::process::exit(2);
    };
    let path = std::path::PathBuf::from(file);
    let mut input = std::fs::File::open(&path).expect("open the file");
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = input.read(&mut buf).expect("read the file");
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
    }
    drop(buf);
    let data = RunData {
        path,
        bytes,
        sha256: hex::encode(sha.finalize()),
        rows: 0,
    };
    let run = RunInfo {
        business_id: "bench".into(),
        report_id: "bench".into(),
        report_name: "bench".into(),
        report_type: "campaign.daily.v1".into(),
        run_id: "bench-run-1".into(),
        completed_at: time::OffsetDateTime::now_utc(),
    };
    let sink = S3Sink::from_uri(&uri).expect("an s3:// URI");
    let started = Instant::now();
    sink.deliver(&run, &data).await.expect("deliver");
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"seconds\": {seconds:.3}, \"bytes\": {bytes}}}");
}
