//! Campaign reports: typed columns, the latest table, atomicity, idempotency conflicts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use connectly_sink::Sink;
use connectly_sink::conformance::Inspect;
use connectly_sink::conformance::campaign_fixture;
use connectly_sink_sqlite::SqliteSink;

use crate::{CAMPAIGN_HEADER, Inspector, csv_line, reader, run_with_csv};

/// A campaign row with the given key and name; other cells typical.
fn row(customer: &str, sendout: &str, name: &str) -> [String; 15] {
    [
        customer.to_owned(),
        "2d503e81-e270-4467-a05f-21a900efbbc1".to_owned(),
        name.to_owned(),
        sendout.to_owned(),
        "018f6423-fa75-de08-9f61-59a8526eb5c0".to_owned(),
        "2024-05-10 20:13:50.682000".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]
}

fn campaign_csv(rows: &[[String; 15]]) -> String {
    let mut csv = csv_line(&CAMPAIGN_HEADER);
    for r in rows {
        csv.push_str(&csv_line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    csv
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_columns_json_and_extra_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typed.db");
    let sink = SqliteSink::new(&db);
    let mut header: Vec<&str> = CAMPAIGN_HEADER.to_vec();
    header.extend(["channel", "cost \"eur\""]);
    let mut csv = csv_line(&header);
    csv.push_str(&csv_line(&[
        "+123456789",
        "b1",
        "Promo",
        "s1",
        "c1",
        "2024-05-10 20:13:50.682000",
        "2024-05-10 20:13:51.000000",
        "",
        "",
        "131026",
        "Message Undeliverable.",
        r#"{"id":"f2390b","name":"Yes","ts":"2024-07-16 12:11:03.609000"}"#,
        "[]",
        r#"{"name":"Ana"}"#,
        "",
        "whatsapp",
        "0.05",
    ]));
    csv.push_str(&csv_line(&[
        "+987", "b1", "Promo", "s1", "c2", "", "", "", "", "", "", "", "", "", "", "", "",
    ]));
    let (run, data) = run_with_csv(dir.path(), "typed", "campaign.daily.v1", &csv);
    let receipt = sink.deliver(&run, &data).await.unwrap();
    assert!(
        receipt
            .location
            .starts_with(&format!("sqlite:{} table campaign_rows (run seq ", db.display()))
    );

    let conn = reader(&db);
    let first: (String, String, String, String, String, String, String) = conn
        .query_row(
            "SELECT typeof(error_code), typeof(sent_at), button_clicks, link_clicks, extra_columns,
                    json_valid(button_clicks) || json_valid(link_clicks) || json_valid(input_variables) || json_valid(extra_columns),
                    julianday(sent_at) IS NOT NULL AND julianday(delivered_at) > julianday(sent_at)
             FROM campaign_rows WHERE row_no = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?, r.get::<_, i64>(6)?.to_string())),
        )
        .unwrap();
    assert_eq!(first.0, "integer");
    assert_eq!(first.1, "text");
    assert_eq!(
        first.2,
        r#"[{"id":"f2390b","name":"Yes","ts":"2024-07-16 12:11:03.609000"}]"#
    );
    assert_eq!(first.3, "[]");
    let extra: serde_json::Value = serde_json::from_str(&first.4).unwrap();
    assert_eq!(
        extra,
        serde_json::json!({"channel": "whatsapp", "cost \"eur\"": "0.05"})
    );
    assert_eq!(first.5, "1111", "every JSON column is valid JSON");
    assert_eq!(first.6, "1", "timestamps are read by SQLite's date functions");
    let (error_code, clicks_len, name): (i64, i64, String) = conn
        .query_row(
            "SELECT error_code, json_array_length(button_clicks), json_extract(input_variables, '$.name')
             FROM campaign_rows WHERE row_no = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((error_code, clicks_len, name.as_str()), (131026, 1, "Ana"));
    // Empty cells are NULL in typed columns; extra columns keep their (empty) values.
    let nulls: i64 = conn
        .query_row(
            "SELECT (sent_at IS NULL) + (delivered_at IS NULL) + (read_at IS NULL) + (opt_out_at IS NULL)
                  + (error_code IS NULL) + (error_msg IS NULL) + (button_clicks IS NULL) + (link_clicks IS NULL)
                  + (input_variables IS NULL) + (output_variables IS NULL)
             FROM campaign_rows WHERE row_no = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 10);
    let extra2: String = conn
        .query_row("SELECT extra_columns FROM campaign_rows WHERE row_no = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(extra2, r#"{"channel":"","cost \"eur\"":""}"#);
    // The run row.
    let (completed_at, rows, bytes, sha, table): (String, i64, i64, String, String) = conn
        .query_row(
            "SELECT completed_at, rows, bytes, sha256, table_name FROM connectly_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(completed_at, "2025-04-30 12:00:00");
    assert_eq!(
        (rows, bytes as u64, sha.as_str(), table.as_str()),
        (2, data.bytes, data.sha256.as_str(), "campaign_rows")
    );
    // The id packs the run's seq and the row number.
    let ids: Vec<i64> = conn
        .prepare("SELECT id - (run_seq << 32) FROM campaign_rows ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [1, 2]);
    // No trailing columns: extra_columns is NULL.
    let (run2, data2) = run_with_csv(
        dir.path(),
        "typed-plain",
        "campaign.daily.v1",
        &campaign_csv(&[row("+1", "s9", "x")]),
    );
    sink.deliver(&run2, &data2).await.unwrap();
    let plain: Option<String> = conn
        .query_row(
            "SELECT extra_columns FROM campaign_rows WHERE sendout_id = 's9'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_keeps_the_newest_run_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latest.db");
    let sink = SqliteSink::new(&db);
    let day = Duration::from_secs(86_400);
    let (mut a, a_data) = run_with_csv(
        dir.path(),
        "a",
        "campaign.daily.v1",
        &campaign_csv(&[
            row("k1", "s", "A-first"),
            row("k2", "s", "A"),
            row("k1", "s", "A-last"),
            row("k4", "s", "A"),
        ]),
    );
    let (mut b, b_data) = run_with_csv(
        dir.path(),
        "b",
        "campaign.daily.v1",
        &campaign_csv(&[row("k2", "s", "B"), row("k3", "s", "B")]),
    );
    let (mut c, c_data) = run_with_csv(
        dir.path(),
        "c",
        "campaign.daily.v1",
        &campaign_csv(&[
            row("k1", "s", "C"),
            row("k2", "s", "C"),
            row("k3", "s", "C"),
            row("k5", "s", "C"),
        ]),
    );
    a.completed_at += day;
    b.completed_at += 2 * day;
    c.completed_at -= day;
    for (run, data) in [(&a, &a_data), (&b, &b_data), (&c, &c_data)] {
        sink.deliver(run, data).await.unwrap();
    }
    let conn = reader(&db);
    let latest: Vec<(String, String, String, String)> = conn
        .prepare("SELECT customer_external_id, campaign_name, run_id, completed_at FROM campaign_latest ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let got: Vec<(&str, &str, &str)> = latest
        .iter()
        .map(|(k, n, r, _)| (k.as_str(), n.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("k1", "A-last", "run-a"),
            ("k2", "B", "run-b"),
            ("k3", "B", "run-b"),
            ("k4", "A", "run-a"),
            ("k5", "C", "run-c"),
        ]
    );
    assert_eq!(latest[1].3, "2025-05-02 12:00:00");
    // Each latest row points back at its history row.
    let dangling: i64 = conn
        .query_row(
            "SELECT count(*) FROM campaign_latest l LEFT JOIN campaign_rows h ON h.id = l.row_id
             WHERE h.id IS NULL OR h.campaign_name <> l.campaign_name OR h.run_seq <> l.run_seq",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0);
    let history: i64 = conn
        .query_row("SELECT count(*) FROM campaign_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 10);
    // The latest upsert reads one run by its id range, not by scanning the history.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT * FROM campaign_rows WHERE run_seq = 1 AND id BETWEEN 1 << 32 AND (1 << 32) | 4294967295 ORDER BY id",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("INTEGER PRIMARY KEY") || plan.contains("rowid"), "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_never_sees_half_a_run() {
    const ROWS: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("atomic.db");
    let sink = SqliteSink::new(&db);
    sink.open_check().await.unwrap();
    let fixture = campaign_fixture(&dir.path().join("scratch"), "big", ROWS);

    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = Arc::clone(&done);
        let db = db.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            conn.busy_timeout(Duration::from_millis(20)).unwrap();
            let mut seen = Vec::new();
            let mut busy = 0;
            while !done.load(Ordering::SeqCst) {
                match conn.query_row(
                    "SELECT (SELECT count(*) FROM campaign_rows), (SELECT count(*) FROM campaign_latest),
                            (SELECT count(*) FROM connectly_runs)",
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
                ) {
                    Ok(counts) => seen.push(counts),
                    // The writer holds the exclusive lock while it spills or commits.
                    Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => busy += 1,
                    Err(e) => panic!("reader failed: {e}"),
                }
            }
            (seen, busy)
        })
    };
    let started = Instant::now();
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (seen, busy) = poller.join().unwrap();
    eprintln!(
        "loaded {ROWS} rows in {elapsed:?}; the reader saw {} snapshots ({busy} busy)",
        seen.len()
    );
    assert!(!seen.is_empty(), "the reader never got a snapshot");
    let full = (ROWS as i64, ROWS as i64, 1);
    for counts in &seen {
        assert!(
            *counts == (0, 0, 0) || *counts == full,
            "a reader saw part of a run: {counts:?}"
        );
    }
    let after: i64 = reader(&db)
        .query_row("SELECT count(*) FROM campaign_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, ROWS as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_run_with_other_content_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conflict.db");
    let sink = SqliteSink::new(&db);
    let fixture = campaign_fixture(dir.path(), "conflict", 5);
    sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    let (_, other) = run_with_csv(
        dir.path(),
        "conflict-other",
        "campaign.daily.v1",
        &campaign_csv(&[row("k", "s", "different")]),
    );
    let err = sink.deliver(&fixture.run, &other).await.unwrap_err();
    assert!(!err.is_retriable(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("sqlite:{}: ", db.display())), "{msg}");
    assert!(msg.contains("already loaded with other content"), "{msg}");
    assert!(
        msg.contains(&fixture.data.sha256[..12]) && msg.contains(&other.sha256[..12]),
        "{msg}"
    );
    assert!(sink.holds(&fixture.run, &fixture.data.sha256).await.unwrap());
    assert!(!sink.holds(&fixture.run, &other.sha256).await.unwrap());
    let stored = Inspector { path: db.clone() }.read_back(&fixture.run).await.unwrap();
    assert!(matches!(stored, Some(connectly_sink::conformance::Stored::Rows(r)) if r.len() == 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_csv_is_permanent_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let sink = SqliteSink::new(&db);
    let mut bad = row("k2", "s", "x");
    bad[5] = "10/05/2024 20:13".to_owned();
    let (run, data) = run_with_csv(
        dir.path(),
        "bad-csv",
        "campaign.daily.v1",
        &campaign_csv(&[row("k1", "s", "x"), row("k3", "s", "x"), bad]),
    );
    let err = sink.deliver(&run, &data).await.unwrap_err();
    assert!(!err.is_retriable(), "{}", err.chain());
    let msg = err.to_string();
    for part in ["run-bad-csv", &data.path.display().to_string(), "line 4", "sent_at"] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert!(!sink.holds(&run, &data.sha256).await.unwrap());
    assert!(Inspector { path: db.clone() }.read_back(&run).await.unwrap().is_none());
    let rows: i64 = reader(&db)
        .query_row("SELECT count(*) FROM campaign_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);

    // Valid CSV that is not what was declared: permanent, says so, nothing visible.
    let fixture = campaign_fixture(dir.path(), "mismatch", 20);
    let mut wrong = fixture.data.clone();
    wrong.sha256 = "0".repeat(64);
    let err = sink.deliver(&fixture.run, &wrong).await.unwrap_err();
    assert!(!err.is_retriable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("does not match its declared content") && msg.contains(&fixture.data.sha256),
        "{msg}"
    );
    assert!(
        Inspector { path: db.clone() }
            .read_back(&fixture.run)
            .await
            .unwrap()
            .is_none()
    );

    // A spool file that is gone: permanent, names the file.
    let mut gone = data.clone();
    gone.path = dir.path().join("no-such-spool.csv");
    let err = sink.deliver(&run, &gone).await.unwrap_err();
    assert!(
        !err.is_retriable() && err.to_string().contains("no-such-spool.csv"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("concurrent.db");
    let sink = Arc::new(SqliteSink::new(&db));
    // A second sink on the same file stands for another process.
    let other = Arc::new(SqliteSink::new(&db));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let fixture = campaign_fixture(dir.path(), &format!("par-{i}"), 300);
        for s in [&sink, &other] {
            let s = Arc::clone(s);
            let f = fixture.clone();
            tasks.push(tokio::spawn(async move { s.deliver(&f.run, &f.data).await }));
        }
    }
    let mut fresh = 0;
    for t in tasks {
        let receipt = t.await.unwrap().unwrap();
        if !receipt.already_present {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 8, "each run loaded exactly once");
    let (runs, rows): (i64, i64) = reader(&db)
        .query_row(
            "SELECT count(*), (SELECT count(*) FROM campaign_rows) FROM connectly_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, rows), (8, 8 * 300));
}

/// More rows than one batch of the parsing thread, with extra columns: every row lands
/// in order; a bad cell in a later batch fails the delivery and leaves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn runs_longer_than_a_batch_land_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("batches.db");
    let sink = SqliteSink::new(&db);
    let mut header: Vec<&str> = CAMPAIGN_HEADER.to_vec();
    header.push("channel");
    let body = |rows: usize, bad_at: Option<usize>| {
        let mut csv = csv_line(&header);
        for i in 1..=rows {
            let mut cells = row(&format!("+1555{i:07}"), "s1", "Promo, \"Año\"").to_vec();
            cells[13] = format!(r#"{{"n":{i}}}"#);
            if Some(i) == bad_at {
                cells[5] = "not a time".to_owned();
            }
            cells.push(format!("wa-{i}"));
            csv.push_str(&csv_line(&cells.iter().map(String::as_str).collect::<Vec<_>>()));
        }
        csv
    };

    let (run, data) = run_with_csv(dir.path(), "bad", "campaign.daily.v1", &body(2600, Some(2500)));
    assert!(sink.deliver(&run, &data).await.is_err());
    assert!(!sink.holds(&run, &data.sha256).await.unwrap());

    let (run, data) = run_with_csv(dir.path(), "good", "campaign.daily.v1", &body(2600, None));
    sink.deliver(&run, &data).await.unwrap();
    let conn = reader(&db);
    let (rows, first, last): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), min(row_no), max(row_no) FROM campaign_rows",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, first, last), (2600, 1, 2600));
    let (customer, vars, extra): (String, String, String) = conn
        .query_row(
            "SELECT customer_external_id, input_variables, extra_columns FROM campaign_rows WHERE row_no = 2049",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(customer, "+15550002049");
    assert_eq!(vars, r#"{"n":2049}"#);
    assert_eq!(extra, r#"{"channel":"wa-2049"}"#);
    let latest: i64 = conn
        .query_row("SELECT count(*) FROM campaign_latest", [], |r| r.get(0))
        .unwrap();
    assert_eq!(latest, 2600);
}
