//! The `connectly-sync-jsonl` binary syncing from the vendor fake over real HTTP into a
//! real folder.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use connectly_sink::Manifest;
use connectly_vendor_fake::{Config, FakeVendor, campaign_csv_for};

/// The custom binary keeps the whole stock CLI and adds `jsonl:`; a run synced from the
/// vendor fake lands as one object per row, once, with header names as keys.
#[test]
fn the_custom_binary_syncs_into_jsonl() {
    let vendor = FakeVendor::spawn(Config::default()).unwrap();
    let business = "2d503e81-e270-4467-a05f-21a900efbbc1";
    vendor.add_business(business, "test-key").unwrap();
    vendor
        .add_report(business, "rep-1", "Daily Campaign Report", "campaign.daily.v1")
        .unwrap();
    let csv = campaign_csv_for(business, 25, 7);
    vendor
        .publish_run("rep-1", "run-1", csv.clone(), time::OffsetDateTime::now_utc())
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sync = || {
        Command::new(env!("CARGO_BIN_EXE_connectly-sync-jsonl"))
            .args([
                "sync",
                "--json",
                "--business-id",
                business,
                "--base-url",
                vendor.base_url(),
            ])
            .arg("--sink")
            .arg(format!("jsonl:{}", out.display()))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("CONNECTLY_API_KEY", "test-key")
            .output()
            .unwrap()
    };
    let first = sync();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = sync();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        summary["delivered_runs"], 0,
        "the second sync delivers nothing: {summary}"
    );

    let jsonl: Vec<PathBuf> = walk(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(jsonl.len(), 1, "{jsonl:?}");
    let text = std::fs::read_to_string(&jsonl[0]).unwrap();
    let mut csv_reader = csv_records(&csv);
    let header = csv_reader.remove(0);
    assert_eq!(text.lines().count(), 25);
    for (line, record) in text.lines().zip(&csv_reader) {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        for (name, cell) in header.iter().zip(record) {
            assert_eq!(
                object[name.as_str()],
                serde_json::Value::String(cell.clone()),
                "column {name}"
            );
        }
    }
    let manifest = jsonl[0].with_file_name("run-1.manifest.json");
    let manifest = Manifest::from_json(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(manifest.rows, 25);
    assert_eq!(manifest.report_id, "rep-1");

    let help = Command::new(env!("CARGO_BIN_EXE_connectly-sync-jsonl"))
        .args(["sync", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("jsonl:DIR") && help.contains("sqlite:PATH"), "{help}");
}

/// Every record of a CSV, header included, read with the `csv` crate directly.
fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
