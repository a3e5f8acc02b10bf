//! The main job: several report types into SQLite and files, exactly once.

use connectly_e2e::*;
use time::macros::datetime;

const DAILY: &str = "c80716a5-62c5-4ba5-b99d-5c2a6fd39317";

/// Two campaign reports (the daily one reusing its report id as run id, as in the
/// vendor's example), one undocumented custom type, one processing, one failed.
fn scenario(w: &World) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let daily = w.campaign(DAILY, DAILY, "campaign.daily.v1", 300, 1);
    let monthly = w.campaign("monthly-1", "run-2025-04", "campaign.monthly.v1", 450, 2);
    w.vendor
        .add_report(BUSINESS, "custom-1", "Custom", "campaign.daily.custom")
        .unwrap();
    let custom = custom_csv(40, 3);
    w.vendor
        .publish_run("custom-1", "run-c1", custom.clone(), datetime!(2025-04-29 08:00:00 UTC))
        .unwrap();
    w.vendor
        .add_report(BUSINESS, "weekly-1", "Weekly", "campaign.weekly.v1")
        .unwrap();
    w.vendor.set_processing("weekly-1", "run-w1").unwrap();
    w.vendor
        .add_report(BUSINESS, "quarterly-1", "Quarterly", "campaign.quarterly.v1")
        .unwrap();
    w.vendor.set_failed("quarterly-1", "run-q1").unwrap();
    (daily, monthly, custom)
}

#[test]
fn several_report_types_land_exactly_once_and_a_second_sync_only_lists() {
    let w = World::new();
    let (daily, monthly, custom) = scenario(&w);
    let db = w.path("out/connectly.db");
    let files = w.path("out/files");

    let first = w.sync(&["sqlite:out/connectly.db", "file:out/files"], 0);
    assert_eq!(first["ok"], true);
    assert_eq!(first["delivered_runs"], 3, "{first:#}");
    let actions: Vec<_> = first["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    assert_eq!(actions, ["delivered", "delivered", "delivered", "skipped", "skipped"]);
    assert_eq!(w.vendor.list_requests(), 1);
    assert!(
        !w.vendor.api_key_seen_on_downloads(),
        "the API key reached the file host"
    );

    // SQLite, read by the sqlite3 CLI: every row exactly once, typed.
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM connectly_runs"), 3);
    assert_eq!(
        sqlite3_count(
            &db,
            &format!("SELECT count(*) FROM campaign_rows WHERE run_id = '{DAILY}'")
        ),
        300
    );
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_rows WHERE run_id = 'run-2025-04'"),
        450
    );
    assert_eq!(
        sqlite3_count(
            &db,
            "SELECT count(*) FROM (SELECT DISTINCT run_id, row_no FROM campaign_rows)"
        ),
        750
    );
    assert_eq!(
        sqlite3_count(
            &db,
            "SELECT count(*) FROM campaign_rows WHERE sent_at IS NOT NULL AND julianday(sent_at) IS NULL"
        ),
        0,
        "timestamps must be readable by SQLite's date functions"
    );
    assert_eq!(
        sqlite3_count(
            &db,
            "SELECT count(*) FROM campaign_rows WHERE error_code IS NOT NULL AND typeof(error_code) <> 'integer'"
        ),
        0
    );
    assert_eq!(
        sqlite3_count(
            &db,
            "SELECT count(*) FROM campaign_rows WHERE (button_clicks IS NOT NULL AND NOT json_valid(button_clicks)) \
             OR (input_variables IS NOT NULL AND NOT json_valid(input_variables))"
        ),
        0
    );
    // The rows equal the CSV's cells (text columns compared value by value).
    let want: Vec<String> = csv_records(&daily)
        .iter()
        .map(|r| format!("{}|{}|{}", r[0], r[3], r[2]))
        .collect();
    let got = sqlite3(
        &db,
        &format!(
            "SELECT customer_external_id || '|' || sendout_id || '|' || campaign_name FROM campaign_rows \
             WHERE run_id = '{DAILY}' ORDER BY row_no"
        ),
    );
    assert_eq!(got.join("\n"), want.join("\n"));
    // The latest table has one row per (sendout, customer) across both runs.
    let keys: std::collections::HashSet<(String, String)> = csv_records(&daily)
        .into_iter()
        .chain(csv_records(&monthly))
        .map(|r| (r[3].clone(), r[0].clone()))
        .collect();
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_latest"),
        keys.len() as u64
    );
    // The undocumented type gets its own table, with its header's columns.
    let custom_rows = csv_records(&custom);
    let table = sqlite3(&db, "SELECT table_name FROM connectly_runs WHERE run_id = 'run-c1'").remove(0);
    assert_eq!(
        sqlite3_count(&db, &format!("SELECT count(*) FROM \"{table}\"")),
        custom_rows.len() as u64
    );

    // Files: byte-identical copies under the partitioned layout, with manifests.
    for (rel, bytes) in [
        (
            format!("business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/{DAILY}.csv"),
            &daily,
        ),
        (
            "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.monthly.v1/run_date=2025-04-30/run-2025-04.csv".to_owned(),
            &monthly,
        ),
        (
            "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.custom/run_date=2025-04-29/run-c1.csv".to_owned(),
            &custom,
        ),
    ] {
        let on_disk = std::fs::read(files.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(on_disk == *bytes, "{rel} differs from the vendor's CSV");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(files.join(rel.replace(".csv", ".manifest.json"))).unwrap()).unwrap();
        assert_eq!(manifest["sha256"], sha256(bytes));
        assert_eq!(manifest["bytes"], bytes.len());
        assert_eq!(manifest["rows"], csv_records(bytes).len());
    }
    assert_eq!(files_under(&files).len(), 6, "{:?}", files_under(&files));

    // Second sync: one list request, no download, nothing delivered, exit 0.
    let downloads = w.vendor.counters().downloads_served;
    let second = w.sync(&["sqlite:out/connectly.db", "file:out/files"], 0);
    assert_eq!(second["delivered_runs"], 0, "{second:#}");
    assert_eq!(second["list_requests"], 1);
    assert_eq!(w.vendor.list_requests(), 2);
    assert_eq!(w.vendor.counters().downloads_served, downloads);
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), 750);
    assert_eq!(files_under(&files).len(), 6);
    // Nothing is left in the spool once every sink has a run.
    assert_eq!(files_under(&w.path(".connectly-sync/spool")), Vec::<String>::new());
}

#[test]
fn default_sink_and_human_summary() {
    let w = World::new();
    w.campaign(DAILY, DAILY, "campaign.daily.v1", 20, 9);
    let run = w.run(&["sync"]);
    assert_eq!(run.code(), 0, "{run:?}");
    let out = run.stdout();
    assert!(out.contains("campaign.daily.v1") && out.contains("20 rows"), "{out}");
    assert!(out.contains("sqlite:connectly.db: delivered"), "{out}");
    assert!(out.contains("1 reports: 1 delivered"), "{out}");
    assert_eq!(
        sqlite3_count(&w.path("connectly.db"), "SELECT count(*) FROM campaign_rows"),
        20
    );
    assert!(w.path(".connectly-sync/ledger.db").exists());
}

#[test]
fn new_runs_and_status_changes_are_picked_up() {
    let w = World::new();
    w.vendor
        .add_report(BUSINESS, "daily", "Daily", "campaign.daily.v1")
        .unwrap();
    w.vendor.set_processing("daily", "run-1").unwrap();
    let sinks = ["sqlite:db.sqlite", "file:files"];

    let first = w.sync(&sinks, 0);
    assert_eq!(first["reports"][0]["action"], "skipped");
    assert_eq!(first["reports"][0]["status"], "processing");
    assert!(
        !w.path("db.sqlite").exists()
            || sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs") == 0
    );

    // processing -> completed: delivered.
    let run1 = w.publish_campaign("daily", "run-1", 50, 11, datetime!(2025-05-01 06:00:00 UTC));
    assert_eq!(w.sync(&sinks, 0)["delivered_runs"], 1);
    // A newer run replaces it in the API; both stay in the history.
    let run2 = w.publish_campaign("daily", "run-2", 60, 12, datetime!(2025-05-02 06:00:00 UTC));
    let third = w.sync(&sinks, 0);
    assert_eq!(third["delivered_runs"], 1);
    assert_eq!(third["reports"][0]["run_id"], "run-2");
    let db = w.path("db.sqlite");
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), 110);
    // The latest table holds run-2's version of every key run-2 has.
    let run2_keys = csv_records(&run2).len() as u64;
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_latest WHERE run_id = 'run-2'"),
        run2_keys
    );
    let union: std::collections::HashSet<(String, String)> = csv_records(&run1)
        .into_iter()
        .chain(csv_records(&run2))
        .map(|r| (r[3].clone(), r[0].clone()))
        .collect();
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_latest"),
        union.len() as u64
    );
    assert_eq!(
        std::fs::read(w.path("files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-05-02/run-2.csv")).unwrap(),
        run2
    );

    // A failed run is reported, never delivered.
    w.vendor.set_failed("daily", "run-3").unwrap();
    let fourth = w.sync(&sinks, 0);
    assert_eq!(fourth["reports"][0]["action"], "skipped");
    assert_eq!(fourth["reports"][0]["status"], "failed");
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM connectly_runs"), 2);
}

#[test]
fn a_sink_added_later_receives_the_runs_still_listed() {
    let w = World::new();
    let daily = w.campaign(DAILY, DAILY, "campaign.daily.v1", 30, 5);
    w.sync(&["sqlite:db.sqlite"], 0);
    let second = w.sync(&["sqlite:db.sqlite", "file:files"], 0);
    let sinks = &second["reports"][0]["sinks"];
    assert_eq!(sinks[0]["outcome"], "already_delivered", "{second:#}");
    assert_eq!(sinks[1]["outcome"], "delivered", "{second:#}");
    assert_eq!(
        std::fs::read(w.path(&format!(
            "files/business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/{DAILY}.csv"
        )))
        .unwrap(),
        daily
    );
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        30
    );
}

#[test]
fn type_filter_uses_one_request_and_syncs_only_those_types() {
    let w = World::new();
    w.campaign(DAILY, DAILY, "campaign.daily.v1", 10, 1);
    w.campaign("monthly", "run-m", "campaign.monthly.v1", 10, 2);
    w.campaign("weekly", "run-w", "campaign.weekly.v1", 10, 3);
    let run = w.run(&["sync", "--json", "--sink", "file:one", "--type", "campaign.monthly.v1"]);
    assert_eq!(run.code(), 0, "{run:?}");
    let types: Vec<_> = run.json()["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["report_type"].clone())
        .collect();
    assert_eq!(types, ["campaign.monthly.v1"]);
    let run = w.run(&[
        "sync",
        "--json",
        "--sink",
        "file:two",
        "--type",
        "campaign.daily.v1",
        "--type",
        "campaign.weekly.v1",
    ]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(run.json()["reports"].as_array().unwrap().len(), 2);
    assert_eq!(w.vendor.list_requests(), 2, "one list request per sync");
    assert_eq!(files_under(&w.path("one")).len(), 2);
    assert_eq!(files_under(&w.path("two")).len(), 4);
}

#[test]
fn hostile_ids_stay_inside_the_sink_folder() {
    let w = World::new();
    w.vendor
        .add_report(BUSINESS, "../../escape", "Hostile", "../../../etc")
        .unwrap();
    w.publish_campaign(
        "../../escape",
        "../../../../tmp/owned",
        5,
        1,
        datetime!(2025-04-30 00:00:00 UTC),
    );
    w.sync(&["file:files", "sqlite:db.sqlite"], 0);
    let inside = files_under(&w.path("files"));
    assert_eq!(inside.len(), 2, "{inside:?}");
    assert!(inside.iter().all(|p| !p.split('/').any(|c| c == "..")), "{inside:?}");
    let everything = files_under(w.dir.path());
    assert!(
        everything
            .iter()
            .all(|p| p.starts_with("files/") || p.starts_with(".connectly-sync/") || p.starts_with("db.sqlite")),
        "{everything:?}"
    );
}

/// A `.part` left by a sync killed mid-download is removed once its report has moved on
/// to a newer run (it could never be resumed); other reports' files are left alone.
#[test]
fn partial_downloads_of_runs_a_report_moved_on_from_are_removed() {
    let w = World::new();
    w.campaign("daily", "r2", "campaign.daily.v1", 10, 31);
    let spool = w.path(&format!(".connectly-sync/spool/{BUSINESS}"));
    std::fs::create_dir_all(spool.join("daily")).unwrap();
    std::fs::create_dir_all(spool.join("not-listed")).unwrap();
    std::fs::write(spool.join("daily/r1.csv.part"), b"half of an old run").unwrap();
    std::fs::write(spool.join("not-listed/x1.csv.part"), b"another report's").unwrap();
    let result = w.sync(&["file:files"], 0);
    assert_eq!(result["delivered_runs"], 1, "{result:#}");
    assert!(!spool.join("daily/r1.csv.part").exists(), "the stale part is removed");
    assert!(
        spool.join("not-listed/x1.csv.part").exists(),
        "a report not listed is left alone"
    );
}
