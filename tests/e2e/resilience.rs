//! Transport faults against the real binary: throttling, server errors, bodies cut
//! short, pages that are not reports, expired URLs. Each test fails if the protection it
//! covers is removed.

use std::time::{Duration, Instant};

use connectly_e2e::*;

const SINKS: [&str; 2] = ["sqlite:db.sqlite", "file:files"];
const TYPE: &str = "campaign.daily.v1";
/// Where the file sink puts run-1 of the daily report.
const RUN_FILE: &str = "files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv";

/// A world with one daily campaign report whose run-1 has `rows` rows; returns its CSV.
fn daily(rows: usize) -> (World, Vec<u8>) {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", TYPE, rows, 7);
    (w, csv)
}

/// run-1 is in both sinks, exactly once and byte for byte, and nothing is left behind.
fn assert_landed_once(w: &World, csv: &[u8]) {
    assert!(
        std::fs::read(w.path(RUN_FILE)).unwrap() == csv,
        "the file differs from the vendor's CSV"
    );
    let db = w.path("db.sqlite");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_rows WHERE run_id = 'run-1'"),
        csv_records(csv).len() as u64
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM connectly_runs"), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path(&RUN_FILE.replace(".csv", ".manifest.json"))).unwrap()).unwrap();
    assert_eq!(manifest["sha256"], sha256(csv));
    assert_eq!(files_under(&w.path(".connectly-sync/spool")), Vec::<String>::new());
}

#[test]
fn a_throttled_list_is_retried_after_the_pause_the_server_asked_for() {
    let (w, csv) = daily(30);
    w.vendor.inject_list(Fault::rate_limited(1));
    let started = Instant::now();
    let result = w.sync(&SINKS, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(w.vendor.list_requests(), 2);
    assert_eq!(w.vendor.pending_faults(), 0);
    assert_landed_once(&w, &csv);
}

#[test]
fn a_download_failing_twice_with_503_is_retried_until_it_succeeds() {
    let (w, csv) = daily(30);
    w.vendor.inject_download("daily", Fault::status(503)).unwrap();
    w.vendor.inject_download("daily", Fault::status(503)).unwrap();
    let result = w.sync(&SINKS, 0);
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(w.vendor.download_requests_for("daily"), 3);
    assert_eq!(w.vendor.list_requests(), 1);
    assert_landed_once(&w, &csv);
}

#[test]
fn a_connection_reset_mid_body_resumes_with_a_range_request() {
    let (w, csv) = daily(400);
    let half = csv.len() as u64 / 2;
    w.vendor
        .inject_download("daily", Fault::ResetAfter { bytes: half })
        .unwrap();
    let result = w.sync(&SINKS, 0);
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(w.vendor.download_requests_for("daily"), 2);
    assert_eq!(
        w.vendor.partial_downloads(),
        1,
        "the second request must be a resumed 206"
    );
    assert_eq!(w.vendor.counters().download_range_requests, 1);
    assert_eq!(result["reports"][0]["bytes"], csv.len());
    assert_landed_once(&w, &csv);
}

#[test]
fn a_truncated_body_without_range_support_restarts_from_zero() {
    let (w, csv) = daily(400);
    w.vendor.set_range_support(false);
    w.vendor
        .inject_download(
            "daily",
            Fault::Truncate {
                bytes: csv.len() as u64 / 3,
            },
        )
        .unwrap();
    let result = w.sync(&SINKS, 0);
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(w.vendor.download_requests_for("daily"), 2);
    assert_eq!(w.vendor.partial_downloads(), 0);
    assert_eq!(w.vendor.downloads("daily", "run-1"), 2, "the whole file was sent twice");
    assert_eq!(result["reports"][0]["bytes"], csv.len());
    assert_landed_once(&w, &csv);
}

#[test]
fn an_html_page_with_status_200_fails_the_run_and_reaches_no_sink() {
    let (w, csv) = daily(30);
    w.vendor.inject_download("daily", Fault::HtmlPage).unwrap();
    let result = w.sync(&SINKS, 1);
    let report = &result["reports"][0];
    assert_eq!(report["action"], "failed", "{result:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.starts_with("run run-1 of report daily (campaign.daily.v1): download failed: "),
        "{error}"
    );
    assert!(
        error.contains(&format!("download of {}/files/", w.vendor.base_url())),
        "{error}"
    );
    assert!(
        error.contains(
            "the server sent an HTML page instead of the report CSV: \"<!DOCTYPE html> <html><head><title>Maintenance"
        ),
        "{error}"
    );
    assert!(!error.contains("X-Signature"), "{error}");
    // Refused at once (a permanent error), and nothing of it anywhere.
    assert_eq!(w.vendor.download_requests_for("daily"), 1);
    assert!(
        files_under(&w.path("files")).is_empty(),
        "{:?}",
        files_under(&w.path("files"))
    );
    assert!(
        !w.path("db.sqlite").exists()
            || sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs") == 0
    );
    assert_eq!(files_under(&w.path(".connectly-sync/spool")), Vec::<String>::new());

    // Once the vendor serves the file again, the next sync delivers it.
    let second = w.sync(&SINKS, 0);
    assert_eq!(second["delivered_runs"], 1, "{second:#}");
    assert_landed_once(&w, &csv);
}

#[test]
fn an_expired_url_is_refreshed_with_a_second_list_request() {
    let (w, csv) = daily(30);
    w.vendor.inject_download("daily", Fault::ExpireUrl).unwrap();
    let result = w.sync(&SINKS, 0);
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(result["list_requests"], 2);
    assert_eq!(w.vendor.list_requests(), 2);
    assert_eq!(w.vendor.download_requests_for("daily"), 2);
    assert_eq!(w.vendor.counters().downloads_denied, 1);
    assert_landed_once(&w, &csv);
}

/// A slow body that keeps moving is not an error: only an idle body times out, never a
/// long download as a whole (runs of hundreds of megabytes take minutes).
#[test]
fn a_slow_but_steady_body_is_downloaded_whole() {
    let (w, csv) = daily(400);
    // About 40 pauses of 50 ms: two seconds, longer than any per-request total timeout
    // a careless client would set for small bodies.
    let chunk = csv.len() / 40 + 1;
    w.vendor
        .inject_download(
            "daily",
            Fault::Slow {
                chunk,
                delay: Duration::from_millis(50),
            },
        )
        .unwrap();
    let started = Instant::now();
    let result = w.sync(&SINKS, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the fault was not applied"
    );
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert_eq!(w.vendor.downloads("daily", "run-1"), 1, "downloaded once, not retried");
    assert_landed_once(&w, &csv);
}
