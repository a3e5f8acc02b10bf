//! Undocumented report types: one table per type, columns from the header.

use connectly_sink::Sink;
use connectly_sink_sqlite::SqliteSink;

use crate::{Inspector, csv_line, reader, run_with_csv};
use connectly_sink::conformance::{Inspect, Stored};

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_type_gets_its_own_table_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("generic.db");
    let sink = SqliteSink::new(&db);
    let first_csv = [
        csv_line(&["date", "channel", "sent \"total\""]),
        csv_line(&["2025-04-01", "sms, fallback", "7"]),
        csv_line(&["2025-04-02", "", "8"]),
    ]
    .concat();
    let (first, first_data) = run_with_csv(dir.path(), "g1", "campaign.daily.custom", &first_csv);
    let receipt = sink.deliver(&first, &first_data).await.unwrap();
    assert!(
        receipt
            .location
            .contains("table report_campaign_daily_custom (run seq 1)"),
        "{receipt:?}"
    );

    let second_csv = [
        csv_line(&["channel", "date", "Clicks", "sent \"total\""]),
        csv_line(&["whatsapp", "2025-04-03", "3", "9"]),
    ]
    .concat();
    let (second, second_data) = run_with_csv(dir.path(), "g2", "campaign.daily.custom", &second_csv);
    sink.deliver(&second, &second_data).await.unwrap();

    let conn = reader(&db);
    assert_eq!(
        columns(&conn, "report_campaign_daily_custom"),
        ["_run_seq", "_row_no", "date", "channel", "sent \"total\"", "Clicks"]
    );
    let rows: Vec<(i64, i64, String, String, Option<String>)> = conn
        .prepare(
            "SELECT _run_seq, _row_no, date, channel, \"Clicks\" FROM report_campaign_daily_custom
             ORDER BY _run_seq, _row_no",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (1, 1, "2025-04-01".into(), "sms, fallback".into(), None),
            (1, 2, "2025-04-02".into(), String::new(), None),
            (2, 1, "2025-04-03".into(), "whatsapp".into(), Some("3".into())),
        ]
    );
    let mapping: (String, String) = conn
        .query_row("SELECT report_type, table_name FROM connectly_tables", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        mapping,
        ("campaign.daily.custom".into(), "report_campaign_daily_custom".into())
    );
    let stored = Inspector { path: db.clone() }.read_back(&first).await.unwrap();
    assert_eq!(
        stored,
        Some(Stored::Rows(vec![
            vec!["2025-04-01".into(), "sms, fallback".into(), "7".into()],
            vec!["2025-04-02".into(), String::new(), "8".into()],
        ]))
    );

    // Another type whose sanitized name collides gets a suffix.
    let (third, third_data) = run_with_csv(
        dir.path(),
        "g3",
        "Campaign-Daily-Custom",
        &[csv_line(&["x"]), csv_line(&["1"])].concat(),
    );
    let receipt = sink.deliver(&third, &third_data).await.unwrap();
    assert!(
        receipt.location.contains("table report_campaign_daily_custom_2 "),
        "{receipt:?}"
    );
    assert_eq!(
        columns(&conn, "report_campaign_daily_custom_2"),
        ["_run_seq", "_row_no", "x"]
    );
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM connectly_tables", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unstorable_headers_are_permanent_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reserved.db");
    let sink = SqliteSink::new(&db);
    for (tag, header, needle) in [
        ("reserved", ["a", "_run_seq"], "`_run_seq`"),
        ("reserved-case", ["_ROW_NO", "b"], "`_ROW_NO`"),
        ("case-dup", ["Name", "name"], "differ only in letter case"),
    ] {
        let csv = [csv_line(&header), csv_line(&["1", "2"])].concat();
        let (run, data) = run_with_csv(dir.path(), tag, &format!("custom.{tag}"), &csv);
        let err = sink.deliver(&run, &data).await.unwrap_err();
        assert!(!err.is_retriable(), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().contains(&format!("run-{tag}")), "{err}");
        assert!(!sink.holds(&run, &data.sha256).await.unwrap());
    }
    // Nothing of the failed runs remains: no tables, no mappings.
    let conn = reader(&db);
    let leftovers: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM connectly_tables) + (SELECT count(*) FROM sqlite_schema WHERE name LIKE 'report_%')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leftovers, 0);
}
