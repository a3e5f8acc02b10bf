//! Opening lazily, and classifying what goes wrong.

use std::time::Duration;

use connectly_sink::Sink;
use connectly_sink::conformance::{campaign_fixture, check_error_classification};
use connectly_sink_sqlite::SqliteSink;
use rusqlite::Connection;

use crate::reader;

#[tokio::test(flavor = "multi_thread")]
async fn new_does_no_io_and_open_check_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/b/c.db");
    let sink = SqliteSink::new(&db);
    assert_eq!(sink.name(), format!("sqlite:{}", db.display()));
    assert_eq!(SqliteSink::new("data/x.db").name(), "sqlite:data/x.db");
    assert!(!dir.path().join("a").exists(), "new() must not touch the disk");
    sink.open_check().await.unwrap();
    sink.open_check().await.unwrap();
    // A second sink opens the existing database without re-creating anything.
    SqliteSink::new(&db).open_check().await.unwrap();
    let conn = reader(&db);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        ["campaign_latest", "campaign_rows", "connectly_runs", "connectly_tables"]
    );
    let (page_size, version): (i64, i64) = conn
        .query_row(
            "SELECT page_size, user_version FROM pragma_page_size, pragma_user_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((page_size, version), (65536, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn uncreatable_path_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    // A regular file where a folder should be (root ignores permission bits, not this).
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let broken = SqliteSink::new(blocker.join("sub/connectly.db"));
    check_error_classification(&broken, &scratch, false).await;
    let err = broken.open_check().await.unwrap_err();
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("creating the database folder"), "{err}");

    // The path is a folder.
    let folder = SqliteSink::new(dir.path());
    check_error_classification(&folder, &scratch, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_a_database_newer_schema_and_foreign_tables_are_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'z'; 8192]).unwrap();
    check_error_classification(&SqliteSink::new(&garbage), &scratch, false).await;

    let newer = dir.path().join("newer.db");
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteSink::new(&newer).open_check().await.unwrap_err();
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("schema version 99"), "{err}");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE campaign_rows (x TEXT)")
        .unwrap();
    let err = SqliteSink::new(&foreign).open_check().await.unwrap_err();
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("table campaign_rows"), "{err}");
    // Nothing was half-created: the failed migration rolled back.
    let count: i64 = Connection::open(&foreign)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'connectly_runs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_is_retriable_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let sink = SqliteSink::new(&db).with_busy_timeout(Duration::from_millis(100));
    sink.open_check().await.unwrap();
    let fixture = campaign_fixture(dir.path(), "locked", 3);

    let other = Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = sink.deliver(&fixture.run, &fixture.data).await.unwrap_err();
    assert!(err.is_retriable(), "{}", err.chain());
    assert!(
        err.to_string().starts_with(&format!("sqlite:{}: ", db.display())),
        "{err}"
    );
    other.execute_batch("ROLLBACK").unwrap();

    let receipt = sink.deliver(&fixture.run, &fixture.data).await.unwrap();
    assert!(!receipt.already_present);
}
