//! The SQLite sink against real database files: the shared conformance suite, typed
//! storage, the latest table, atomicity under a concurrent reader, undocumented report
//! types, error classification, and an independent reader (the `sqlite3` CLI).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod campaign;
mod errors;
mod generic;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use connectly_sink::conformance::{self, Inspect, Stored};
use connectly_sink::{RunData, RunInfo};
use connectly_sink_sqlite::SqliteSink;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

/// The documented campaign columns, as the sink stores them.
pub(crate) const CAMPAIGN_HEADER: [&str; 15] = conformance::CAMPAIGN_HEADER;

/// Reads the database back through its own read-only connection.
pub(crate) struct Inspector {
    pub(crate) path: PathBuf,
}

/// A read-only connection independent of the sink's.
pub(crate) fn reader(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

#[async_trait]
impl Inspect for Inspector {
    async fn read_back(&self, run: &RunInfo) -> Result<Option<Stored>, String> {
        if !self.path.exists() {
            return Ok(None);
        }
        let conn = reader(&self.path);
        let found: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, table_name FROM connectly_runs WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3",
                [run.business_id.as_str(), run.report_id.as_str(), run.run_id.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let Some((seq, table)) = found else {
            return Ok(None);
        };
        let (columns, run_col, row_col) = if table == "campaign_rows" {
            let columns: Vec<String> = CAMPAIGN_HEADER.iter().map(|s| (*s).to_owned()).collect();
            (columns, "run_seq", "row_no")
        } else {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .map_err(|e| e.to_string())?;
            let columns: Vec<String> = stmt
                .query_map([&table], |row| row.get(0))
                .map_err(|e| e.to_string())?
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let columns = columns.into_iter().filter(|c| !c.starts_with('_')).collect();
            (columns, "_run_seq", "_row_no")
        };
        let select = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {select} FROM {} WHERE {run_col} = ?1 ORDER BY {row_col}",
            quote(&table)
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
        let rows: Vec<Vec<Option<String>>> = stmt
            .query_map([seq], |row| {
                (0..columns.len())
                    .map(|i| {
                        let value: rusqlite::types::Value = row.get(i)?;
                        Ok(match value {
                            rusqlite::types::Value::Null => None,
                            rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                            rusqlite::types::Value::Real(r) => Some(r.to_string()),
                            rusqlite::types::Value::Text(t) => Some(t),
                            rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        })
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        // In a per-type table, a column the run did not have is NULL in all its rows
        // (present cells are stored as text, even empty): leave such columns out.
        let keep: Vec<bool> = (0..columns.len())
            .map(|i| table == "campaign_rows" || rows.iter().any(|r| r[i].is_some()))
            .collect();
        let rows = rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| v.unwrap_or_default())
                    .collect()
            })
            .collect();
        Ok(Some(Stored::Rows(rows)))
    }
}

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A run of `report_type` whose spool holds `csv`, written under `dir`.
pub(crate) fn run_with_csv(dir: &Path, tag: &str, report_type: &str, csv: &str) -> (RunInfo, RunData) {
    let mut fixture = conformance::campaign_fixture(dir, tag, 0);
    fixture.run.report_type = report_type.into();
    std::fs::write(&fixture.data.path, csv).unwrap();
    fixture.data.bytes = csv.len() as u64;
    fixture.data.sha256 = hex::encode(Sha256::digest(csv.as_bytes()));
    fixture.data.rows = csv.lines().count().saturating_sub(1) as u64;
    (fixture.run, fixture.data)
}

/// One CSV line from cells, quoting as needed.
pub(crate) fn csv_line(cells: &[&str]) -> String {
    let mut line = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                (*c).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/folder/connectly.db");
    let sink = SqliteSink::new(&db);
    let inspect = Inspector { path: db.clone() };
    conformance::run_all(&sink, &inspect, &dir.path().join("scratch")).await;

    // An independent reader, the sqlite3 CLI, sees the same database.
    let cli = |sql: &str| {
        let out = std::process::Command::new("/usr/bin/sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(cli("PRAGMA integrity_check"), "ok");
    assert_eq!(cli("PRAGMA journal_mode"), "delete");
    assert_eq!(cli("PRAGMA page_size"), "65536");
    assert_eq!(cli("PRAGMA user_version"), "1");
    let conn = reader(&db);
    let (runs, rows, declared): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), (SELECT count(*) FROM campaign_rows), \
             (SELECT sum(rows) FROM connectly_runs WHERE table_name = 'campaign_rows') FROM connectly_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, declared);
    assert_eq!(
        cli("SELECT count(*) FROM connectly_runs; SELECT count(*) FROM campaign_rows;"),
        format!("{runs}\n{rows}")
    );
    assert_eq!(
        cli("SELECT count(*) FROM report_campaign_daily_custom"),
        "9",
        "the custom fixture's rows"
    );
}
