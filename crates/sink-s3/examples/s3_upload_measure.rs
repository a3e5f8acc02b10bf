//! Measures a large multipart delivery against the local test server: throughput, and
//! this process's peak memory (which should not grow with the run's size).
//!
//! ```text
//! cargo run --release -p connectly-sink-s3 --example s3_upload_measure -- 300
//! ```
//!
//! Writes a spool file of the given size in MiB (default 300), delivers it with the
//! default options (16 MiB threshold, 8 MiB parts, 4 at once), streams the object back
//! to compare its SHA-256, and prints one line of numbers. Needs the test server (see
//! `connectly_sink_s3::testing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Instant;

use connectly_sink::{RunData, RunInfo, Sink};
use connectly_sink_s3::testing::TestServer;
use sha2::{Digest, Sha256};

/// Peak resident memory of this process in KiB (Linux), 0 elsewhere.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: u64 = std::env::args().nth(1).map_or(300, |a| a.parse().expect("size in MiB"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.csv");

    // A CSV-like spool file, written and hashed in 1 MiB pieces.
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut sha = Sha256::new();
    let mut line = 0u64;
    let mut bytes = 0u64;
    let mut chunk = Vec::with_capacity(1 << 20);
    while bytes < mib << 20 {
        chunk.clear();
        while chunk.len() < 1 << 20 {
            writeln!(
                chunk,
                "+3460000{line:08},campaign {line},2024-05-10 20:13:50.682000,{}",
                line % 97
            )
            .unwrap();
            line += 1;
        }
        sha.update(&chunk);
        file.write_all(&chunk).unwrap();
        bytes += chunk.len() as u64;
    }
    file.flush().unwrap();
    drop(file);
    let data = RunData {
        path,
        bytes,
        sha256: hex::encode(sha.finalize()),
        rows: line,
    };
    let run = RunInfo {
        business_id: "measure".into(),
        report_id: "measure".into(),
        report_name: "measure".into(),
        report_type: "campaign.daily.v1".into(),
        run_id: format!("measure-{mib}").into(),
        completed_at: time::OffsetDateTime::now_utc(),
    };

    let server = TestServer::start();
    server.create_bucket("measure").await;
    let sink = server.sink("measure", "");
    let rss_before = peak_rss_kib();
    let started = Instant::now();
    sink.deliver(&run, &data).await.unwrap();
    let elapsed = started.elapsed();
    let rss_after = peak_rss_kib();

    // Stream the object back and compare hashes without holding it in memory.
    let mut object = server
        .client()
        .get_object()
        .bucket("measure")
        .key(sink.data_key(&run))
        .send()
        .await
        .unwrap();
    let mut back = Sha256::new();
    let mut read = 0u64;
    while let Some(piece) = object.body.try_next().await.unwrap() {
        read += piece.len() as u64;
        back.update(&piece);
    }
    assert_eq!(read, bytes, "size read back");
    assert_eq!(hex::encode(back.finalize()), data.sha256, "SHA-256 read back");
    println!(
        "s3 multipart upload: {} MiB in {:.1}s = {:.1} MiB/s; peak RSS {} MiB before, {} MiB after the upload; \
         read back identical",
        bytes >> 20,
        elapsed.as_secs_f64(),
        (bytes >> 20) as f64 / elapsed.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );
}
