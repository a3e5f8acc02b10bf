//! A connectly-sync sink that loads each run into typed SQLite tables, one transaction per run.
//!
//! [`SqliteSink::new`] does no I/O: the database file (and any missing parent folder)
//! is created on first use, with crash-safe settings (`journal_mode=DELETE`,
//! `synchronous=FULL`, 64 KiB pages, a 16 MiB page cache, a busy timeout of 5 s).
//! Each run is loaded in one `BEGIN IMMEDIATE … COMMIT` transaction: another reader
//! sees all of a run or none of it. The spool file is read once; its size and SHA-256
//! are computed while it is parsed and checked before the commit.
//!
//! `connectly-sync` builds it from `--sink sqlite:PATH`; `docs/sinks.md` describes it
//! for operators. Use it alone (with the orchestrator, or from your own code) when you
//! want campaign reports as typed, queryable tables. Its blocking SQLite work runs on
//! Tokio's blocking pool, so it needs a Tokio runtime.
//!
//! ```
//! use connectly_sink::{RunData, RunInfo, Sink};
//! use connectly_sink_sqlite::SqliteSink;
//! use sha2::{Digest, Sha256};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scratch = tempfile::tempdir()?;
//! let csv = "customer_external_id,business_id,campaign_name,sendout_id,cnt_session_id,\
//! sent_at,delivered_at,read_at,opt_out_at,error_code,error_msg,button_clicks,link_clicks,\
//! input_variables,output_variables\n\
//! +123,b1,Spring,s1,c1,2024-05-10 20:13:50.682000,,,,131026,Message Undeliverable.,,,{},\n";
//! let spool = scratch.path().join("spooled.csv");
//! std::fs::write(&spool, csv)?;
//! let data = RunData {
//!     path: spool,
//!     bytes: csv.len() as u64,
//!     sha256: hex::encode(Sha256::digest(csv)),
//!     rows: 1,
//! };
//! let run = RunInfo {
//!     business_id: "2d503e81-e270-4467-a05f-21a900efbbc1".into(),
//!     report_id: "r1".into(),
//!     report_name: "Daily".into(),
//!     report_type: "campaign.daily.v1".into(),
//!     run_id: "run-1".into(),
//!     completed_at: time::macros::datetime!(2025-04-30 12:00 UTC),
//! };
//!
//! let db = scratch.path().join("connectly.db");
//! let sink = SqliteSink::new(&db);
//! let receipt = sink.deliver(&run, &data).await?;
//! assert_eq!(receipt.location, format!("sqlite:{} table campaign_rows (run seq 1)", db.display()));
//! assert!(sink.deliver(&run, &data).await?.already_present);
//!
//! // Any SQLite client can read the tables.
//! let conn = rusqlite::Connection::open(&db)?;
//! let (campaign, code): (String, i64) = conn.query_row(
//!     "SELECT campaign_name, error_code FROM campaign_rows WHERE run_id = 'run-1'",
//!     [],
//!     |row| Ok((row.get(0)?, row.get(1)?)),
//! )?;
//! assert_eq!((campaign.as_str(), code), ("Spring", 131026));
//! # Ok(()) }
//! ```
//!
//! # Schema (a user-facing contract)
//!
//! Table and column names below are stable; `PRAGMA user_version` holds the schema
//! version (1). Timestamps are TEXT that SQLite's date functions read
//! (`julianday(sent_at)`, `date(completed_at)`).
//!
//! ## `connectly_runs`: one row per loaded run
//! | column | type | |
//! | --- | --- | --- |
//! | `seq` | INTEGER PRIMARY KEY | load order, never reused |
//! | `business_id`, `report_id`, `report_name`, `report_type`, `run_id` | TEXT | the run, as the vendor named it; UNIQUE(`business_id`, `report_id`, `run_id`) |
//! | `completed_at` | TEXT | when the run completed, UTC, `YYYY-MM-DD HH:MM:SS` |
//! | `sha256`, `bytes` | TEXT, INTEGER | the spooled CSV's SHA-256 (lowercase hex) and size |
//! | `rows` | INTEGER | data rows |
//! | `table_name` | TEXT | the table holding the rows: `campaign_rows` or a `report_…` table |
//! | `loaded_at` | TEXT | when the load committed, UTC, `YYYY-MM-DD HH:MM:SS` |
//!
//! ## `campaign_rows`: every row of every run whose CSV has the campaign columns
//! | column | type | |
//! | --- | --- | --- |
//! | `id` | INTEGER PRIMARY KEY | `run_seq << 32 \| row_no`: a run's rows are the id range `run_seq << 32 ..= run_seq << 32 \| 0xFFFFFFFF` |
//! | `run_seq` | INTEGER | `connectly_runs.seq` |
//! | `report_type`, `report_id`, `run_id` | TEXT | copied from the run |
//! | `row_no` | INTEGER | data row number in the CSV, from 1 |
//! | `customer_external_id`, `business_id`, `campaign_name`, `sendout_id`, `cnt_session_id` | TEXT | as in the CSV |
//! | `sent_at`, `delivered_at`, `read_at`, `opt_out_at` | TEXT | exactly as the CSV wrote them (`2024-05-10 20:13:50.682000`, UTC by reading); NULL when empty |
//! | `error_code` | INTEGER | NULL when empty |
//! | `error_msg` | TEXT | NULL when empty |
//! | `button_clicks`, `link_clicks` | TEXT | a JSON array (a single click object is stored as a one-element array); NULL when empty |
//! | `input_variables`, `output_variables` | TEXT | a JSON object; NULL when empty |
//! | `extra_columns` | TEXT | a JSON object `{"name": "value"}` of the columns after the documented 15 (columns the vendor added); NULL when there are none |
//!
//! ## `campaign_latest`: the latest row per (`sendout_id`, `customer_external_id`)
//! The data columns of `campaign_rows` (the 15 documented ones and `extra_columns`),
//! then `run_seq`, `run_id`, `report_type`, `completed_at` (of the run the row came
//! from) and `row_id` (its `campaign_rows.id`); UNIQUE(`sendout_id`,
//! `customer_external_id`). Updated at the end of each run's transaction: a row
//! replaces the stored one when its run completed later (ties: the later-loaded run,
//! and within one run the later row), so delivering an older run after a newer one
//! keeps the newer rows.
//!
//! ## Undocumented report types: `report_<type>`
//! A run whose CSV does not start with the campaign columns goes to a table of its
//! own per report type, named `report_` plus the type lowercased with every character
//! outside `[a-z0-9_]` replaced by `_` (`campaign.daily.custom` →
//! `report_campaign_daily_custom`), with a numeric suffix (`_2`, `_3`, …) when that name
//! is taken. `connectly_tables` (`report_type` PRIMARY KEY, `table_name`, `created_at`)
//! records which table holds which type. Columns: `_run_seq` INTEGER
//! (`connectly_runs.seq`), `_row_no` INTEGER (from 1), then one TEXT column per header
//! name, named as in the header. A later run with new columns adds them
//! (`ALTER TABLE … ADD COLUMN`); a column a run does not have is NULL in its rows,
//! while an empty cell is stored as `''`. A header naming `_run_seq` or `_row_no`, or
//! two names differing only in ASCII case, cannot be stored (a permanent error).
//!
//! # Errors
//! A busy or locked database, an I/O error, a full disk are retriable; a database
//! that cannot be opened or created, is read-only, corrupt or has a conflicting
//! schema, bad CSV, a spool that does not match its declared size and SHA-256, and a
//! run already loaded with other content are permanent. Every message starts with
//! the sink's name, `sqlite:<path>`.

mod error;
mod load;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError};
use rusqlite::Connection;

use crate::error::Error;

/// The default time to wait for another connection's lock before giving up (as a
/// retriable error).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Sink`] that loads runs into a SQLite database (see the crate docs for the schema).
///
/// Holds one connection, opened on first use; concurrent calls take turns. Several
/// processes may share a database: each run's transaction waits up to the busy
/// timeout for another writer.
#[derive(Debug)]
pub struct SqliteSink {
    path: PathBuf,
    name: String,
    busy_timeout: Duration,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl SqliteSink {
    /// A sink writing to the database at `path`. Does no I/O: the file and its folder
    /// are created on first use.
    pub fn new(path: impl Into<PathBuf>) -> SqliteSink {
        let path = path.into();
        SqliteSink {
            name: format!("sqlite:{}", path.display()),
            path,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Sets how long to wait for another connection's lock ([`DEFAULT_BUSY_TIMEOUT`]
    /// unless set; at most about 24 days).
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> SqliteSink {
        self.busy_timeout = timeout.min(Duration::from_millis(i32::MAX as u64));
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the database (creating it and its folder if missing) and brings its
    /// schema up to date: what a configuration check runs before the first sync.
    pub async fn open_check(&self) -> Result<(), SinkError> {
        self.with_conn(|_| Ok(())).await
    }

    /// Runs `work` on the connection in a blocking task, opening it first if needed.
    /// A connection that saw an error is closed and reopened on the next call.
    async fn with_conn<T, F>(&self, work: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let slot = Arc::clone(&self.conn);
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        let task = tokio::task::spawn_blocking(move || {
            // The connection is taken out while in use, so a panic cannot leave a
            // half-used one behind: poisoning carries no information here.
            let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let mut conn = match guard.take() {
                Some(conn) => conn,
                None => schema::open(&path, busy_timeout)?,
            };
            let result = work(&mut conn);
            if result.is_ok() {
                *guard = Some(conn);
            }
            result
        });
        match task.await {
            Ok(result) => result.map_err(|e| e.into_sink_error(&self.name)),
            Err(join) => Err(Error::from(join).into_sink_error(&self.name)),
        }
    }
}

#[async_trait]
impl Sink for SqliteSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let run = run.clone();
        let sha256 = sha256.to_owned();
        self.with_conn(move |conn| load::holds(conn, &run, &sha256)).await
    }

    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let (run_owned, data_owned) = (run.clone(), data.clone());
        let loaded = self
            .with_conn(move |conn| load::deliver(conn, &run_owned, &data_owned))
            .await?;
        tracing::debug!(
            sink = %self.name,
            run_id = %run.run_id,
            table = %loaded.table,
            seq = loaded.seq,
            rows = loaded.rows,
            already_present = loaded.already_present,
            "delivered"
        );
        Ok(Delivered {
            location: format!("{} table {} (run seq {})", self.name, loaded.table, loaded.seq),
            already_present: loaded.already_present,
        })
    }

    async fn probe(&self) -> Result<String, SinkError> {
        self.with_conn(|conn| {
            let sql = "BEGIN IMMEDIATE;
                       CREATE TABLE connectly_sync_probe (x INTEGER);
                       INSERT INTO connectly_sync_probe VALUES (1);
                       DROP TABLE connectly_sync_probe;
                       COMMIT;";
            conn.execute_batch(sql).map_err(|source| {
                // Leave no transaction open on a connection that is kept.
                let _ = conn.execute_batch("ROLLBACK");
                Error::Sqlite {
                    doing: "writing and deleting a probe table".to_owned(),
                    source,
                }
            })
        })
        .await?;
        Ok(format!(
            "opened {} (schema up to date) and wrote and deleted a probe table",
            self.path.display()
        ))
    }
}
