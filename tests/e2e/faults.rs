//! Failures that must lose nothing and half-write nothing.

use connectly_e2e::*;
use time::macros::datetime;

#[test]
fn a_failed_sink_is_retried_from_the_spool_without_a_new_download() {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", "campaign.daily.v1", 40, 1);
    // The file sink's folder cannot be created: a regular file stands in its way.
    std::fs::write(w.path("blocked"), b"not a folder").unwrap();
    let sinks = ["sqlite:db.sqlite", "file:blocked/files"];
    let first = w.sync(&sinks, 1);
    assert_eq!(first["ok"], false);
    let outcomes = &first["reports"][0]["sinks"];
    assert_eq!(outcomes[0]["outcome"], "delivered", "{first:#}");
    assert_eq!(outcomes[1]["outcome"], "failed", "{first:#}");
    assert!(
        outcomes[1]["error"].as_str().unwrap().starts_with("file:blocked/files"),
        "{first:#}"
    );
    assert_eq!(w.vendor.downloads("daily", "run-1"), 1);

    // Meanwhile the vendor moves on: run-1 is no longer listed, only its spool has it.
    let csv2 = w.publish_campaign("daily", "run-2", 10, 2, datetime!(2025-05-01 00:00:00 UTC));
    std::fs::remove_file(w.path("blocked")).unwrap();
    let second = w.sync(&sinks, 0);
    let reports = second["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{second:#}");
    let retried = reports.iter().find(|r| r["run_id"] == "run-1").unwrap();
    assert_eq!(retried["from_spool_only"], true);
    assert_eq!(retried["sinks"][0]["outcome"], "already_delivered");
    assert_eq!(retried["sinks"][1]["outcome"], "delivered");
    assert_eq!(
        w.vendor.downloads("daily", "run-1"),
        1,
        "run-1 must come from the spool"
    );
    assert_eq!(
        std::fs::read(w.path("blocked/files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv")).unwrap(),
        csv
    );
    assert_eq!(
        std::fs::read(w.path("blocked/files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-05-01/run-2.csv")).unwrap(),
        csv2
    );
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        50
    );
    // Third sync: nothing pending anywhere.
    let third = w.sync(&sinks, 0);
    assert_eq!(third["delivered_runs"], 0, "{third:#}");
    assert_eq!(third["reports"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_csv_reaches_no_sink_and_is_kept_for_inspection() {
    let w = World::new();
    let good = w.campaign("good", "run-g", "campaign.daily.v1", 10, 1);
    w.vendor
        .add_report(BUSINESS, "bad", "Bad", "campaign.monthly.v1")
        .unwrap();
    let mut text = String::from_utf8(campaign_csv_for(BUSINESS, 5, 2)).unwrap();
    // Break the sent_at cell of the third data row (line 4).
    let lines: Vec<&str> = text.lines().collect();
    let broken_line = lines[3].replacen("2024-", "20X4-", 1);
    text = text.replacen(lines[3], &broken_line, 1);
    w.vendor
        .publish_run(
            "bad",
            "run-b",
            text.clone().into_bytes(),
            datetime!(2025-04-30 00:00:00 UTC),
        )
        .unwrap();

    let result = w.sync(&["sqlite:db.sqlite", "file:files"], 1);
    let bad = result["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["report_id"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad["action"], "failed");
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("run run-b") && error.contains("line 4") && error.contains("sent_at"),
        "{error}"
    );
    assert!(error.contains("quarantine"), "{error}");
    // Nothing of it anywhere; the good report is complete.
    let db = w.path("db.sqlite");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs WHERE run_id = 'run-b'"),
        0
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), 10);
    let files = files_under(&w.path("files"));
    assert!(files.iter().all(|f| !f.contains("run-b")), "{files:?}");
    assert_eq!(
        std::fs::read(w.path("files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-g.csv")).unwrap(),
        good
    );
    // The raw file is kept, byte for byte, in the quarantine folder.
    let quarantined = files_under(&w.path(".connectly-sync/quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let kept = std::fs::read(w.path(".connectly-sync/quarantine").join(&quarantined[0])).unwrap();
    assert_eq!(kept, text.as_bytes());
}

#[test]
fn a_second_sync_on_the_same_state_folder_is_refused_while_one_runs() {
    let w = World::new();
    w.campaign("daily", "run-1", "campaign.daily.v1", 5, 1);
    std::fs::create_dir_all(w.path(".connectly-sync")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.path(".connectly-sync/lock"))
        .unwrap();
    lock.lock().unwrap();
    let run = w.run(&["sync", "--sink", "file:files"]);
    assert_eq!(run.code(), 3, "{run:?}");
    assert!(
        run.stderr().contains("another connectly-sync is already running"),
        "{run:?}"
    );
    assert!(!w.path("files").exists());
    lock.unlock().unwrap();
    let run = w.run(&["sync", "--sink", "file:files"]);
    assert_eq!(run.code(), 0, "{run:?}");
}

#[test]
fn a_wrong_header_for_a_campaign_report_type_is_refused_and_shown() {
    let w = World::new();
    w.campaign("daily", "run-1", "campaign.daily.v1", 10, 1);
    w.sync(&["sqlite:db.sqlite", "file:files"], 0);
    // The next run of the same type comes with a renamed column: not the report.
    let good = String::from_utf8(campaign_csv_for(BUSINESS, 5, 2)).unwrap();
    let renamed = good.replacen("sent_at", "sentAt", 1);
    w.vendor
        .publish_run(
            "daily",
            "run-2",
            renamed.clone().into_bytes(),
            datetime!(2025-05-01 00:00:00 UTC),
        )
        .unwrap();
    let result = w.sync(&["sqlite:db.sqlite", "file:files"], 1);
    let report = &result["reports"][0];
    assert_eq!(report["action"], "failed", "{result:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("run run-2") && error.contains("campaign.daily.v1"),
        "{error}"
    );
    assert!(error.contains("column 6 is `sentAt`, expected `sent_at`"), "{error}");
    assert!(error.contains("received header: \"customer_external_id,"), "{error}");
    // Nothing of it anywhere, and no table was invented for it.
    let db = w.path("db.sqlite");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs WHERE run_id = 'run-2'"),
        0
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM connectly_tables"), 0);
    assert!(files_under(&w.path("files")).iter().all(|f| !f.contains("run-2")));
    let quarantined = files_under(&w.path(".connectly-sync/quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    // A type that never had the campaign columns still loads whatever its header is.
    w.vendor
        .add_report(BUSINESS, "custom", "Custom", "campaign.daily.custom")
        .unwrap();
    w.vendor
        .publish_run("custom", "run-c", custom_csv(3, 1), datetime!(2025-05-01 00:00:00 UTC))
        .unwrap();
    let result = w.sync(&["sqlite:db.sqlite", "file:files"], 1);
    let custom = result["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["report_id"] == "custom")
        .unwrap();
    assert_eq!(custom["action"], "delivered", "{result:#}");
}
