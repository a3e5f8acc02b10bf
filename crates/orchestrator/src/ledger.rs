use std::collections::HashSet;
use std::path::{Path, PathBuf};

use connectly_model::{BusinessId, OffsetDateTime, Report, ReportId, ReportType, Run, RunId, RunResult, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};
use time::format_description::well_known::Rfc3339;

use crate::error::SyncError;

/// A run as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRun {
    /// The business.
    pub business_id: BusinessId,
    /// The report configuration.
    pub report_id: ReportId,
    /// The run.
    pub run_id: RunId,
    /// The report's type.
    pub report_type: ReportType,
    /// The report's name when last seen.
    pub report_name: String,
    /// The vendor's status when last seen.
    pub status: String,
    /// When the run completed (vendor's `createdAt`, else when first seen completed).
    pub completed_at: Option<OffsetDateTime>,
    /// When the run was first listed.
    pub first_seen: OffsetDateTime,
    /// The spool file, while some sink still lacks the run.
    pub spool_path: Option<PathBuf>,
    /// Spooled size in bytes.
    pub bytes: Option<u64>,
    /// Spooled SHA-256.
    pub sha256: Option<String>,
    /// Data rows in the spooled CSV.
    pub rows: Option<u64>,
    /// The last download or validation error.
    pub error: Option<String>,
}

/// One sink's delivery of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerDelivery {
    /// The sink's name.
    pub sink: String,
    /// `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u64,
    /// Where the run landed.
    pub location: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// When this record last changed.
    pub updated_at: OffsetDateTime,
}

/// A run announced to this state folder from outside the listing (a webhook), and
/// what became of it. The signed URL is never stored: it is a credential, and it
/// expires within minutes anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEvent {
    /// The event's number in this ledger.
    pub id: i64,
    /// The business.
    pub business_id: BusinessId,
    /// The report configuration.
    pub report_id: ReportId,
    /// The run announced.
    pub run_id: RunId,
    /// The report's type.
    pub report_type: ReportType,
    /// The report's name.
    pub report_name: String,
    /// When the run completed, if the announcement said.
    pub created_at: Option<OffsetDateTime>,
    /// When the first announcement was recorded.
    pub received_at: OffsetDateTime,
    /// How many times the run was announced (duplicates included).
    pub received: u64,
    /// `pending` (to be processed), `done` or `failed` (given up).
    pub state: String,
    /// Processing attempts so far.
    pub attempts: u64,
    /// When a pending event is due again after a failed attempt.
    pub next_attempt: Option<OffsetDateTime>,
    /// When the event was done or given up.
    pub finished_at: Option<OffsetDateTime>,
    /// What the last attempt found (an error while pending or failed).
    pub note: Option<String>,
}

impl LedgerEvent {
    /// The report and its run as the announcement gave them, without a URL.
    pub fn report(&self) -> Report {
        Report {
            id: self.report_id.clone(),
            name: self.report_name.clone(),
            report_type: self.report_type.clone(),
            last_run: Some(Run {
                id: self.run_id.clone(),
                status: RunStatus::Completed,
                result: Some(RunResult {
                    url: None,
                    expires_at: None,
                    created_at: self.created_at,
                }),
            }),
        }
    }
}

/// What [`Ledger::record_event`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecorded {
    /// The event's number.
    pub id: i64,
    /// False when the same run had been announced before (a duplicate delivery).
    pub new: bool,
}

/// The record of every run seen and, per sink, whether it was delivered: a SQLite
/// database `ledger.db` in the state folder (WAL, `synchronous=FULL`).
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

/// Identifies a run in the ledger.
pub(crate) struct RunKey<'a> {
    pub business_id: &'a BusinessId,
    pub report_id: &'a ReportId,
    pub run_id: &'a RunId,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    business_id  TEXT NOT NULL,
    report_id    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    report_type  TEXT NOT NULL,
    report_name  TEXT NOT NULL,
    status       TEXT NOT NULL,
    completed_at TEXT,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    spool_path   TEXT,
    bytes        INTEGER,
    sha256       TEXT,
    rows         INTEGER,
    error        TEXT,
    PRIMARY KEY (business_id, report_id, run_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    business_id TEXT NOT NULL,
    report_id   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    sink        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('delivered', 'failed')),
    attempts    INTEGER NOT NULL,
    location    TEXT,
    error       TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (business_id, report_id, run_id, sink)
);
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    business_id  TEXT NOT NULL,
    report_id    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    report_type  TEXT NOT NULL,
    report_name  TEXT NOT NULL,
    created_at   TEXT,
    received_at  TEXT NOT NULL,
    received     INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt TEXT,
    finished_at  TEXT,
    note         TEXT,
    UNIQUE (business_id, report_id, run_id)
);
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_types (
    business_id TEXT NOT NULL,
    report_type TEXT NOT NULL,
    first_run   TEXT NOT NULL,
    PRIMARY KEY (business_id, report_type)
);
";

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

impl Ledger {
    /// Opens (creating if needed) `STATE_DIR/ledger.db`.
    pub fn open(state_dir: &Path) -> Result<Self, SyncError> {
        let path = state_dir.join("ledger.db");
        let err = |action: &str| {
            let path = path.clone();
            let action = action.to_owned();
            move |source| SyncError::Ledger { path, action, source }
        };
        let conn = Connection::open(&path).map_err(err("opening"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("setting busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("setting synchronous=FULL"))?;
        conn.execute_batch(SCHEMA).map_err(err("creating tables"))?;
        Ok(Ledger { conn, path })
    }

    /// Opens an existing `STATE_DIR/ledger.db` read-only, for reports such as
    /// `status`; `None` when there is none yet (no sync ever ran there). Creates
    /// nothing and takes no lock, so it works beside a running sync.
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Self>, SyncError> {
        let path = state_dir.join("ledger.db");
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| SyncError::Ledger {
            path: path.clone(),
            action: "opening read-only".to_owned(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| SyncError::Ledger {
                path: path.clone(),
                action: "setting busy timeout".to_owned(),
                source,
            })?;
        Ok(Some(Ledger { conn, path }))
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err<A: Into<String>>(&self, action: A) -> impl FnOnce(rusqlite::Error) -> SyncError + use<A> {
        let path = self.path.clone();
        let action = action.into();
        move |source| SyncError::Ledger { path, action, source }
    }

    /// Records that a run was listed with `status`; returns the ledger's view of it.
    /// `completed_at` is the vendor's; when it has none and the run is completed, the
    /// first time it was seen completed stands in, and stays stable afterwards.
    pub(crate) fn saw_run(
        &self,
        key: &RunKey<'_>,
        report_type: &ReportType,
        report_name: &str,
        status: &str,
        completed_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<LedgerRun, SyncError> {
        let completed = completed_at.or_else(|| (status == "completed").then_some(now));
        self.conn
            .execute(
                "INSERT INTO runs (business_id, report_id, run_id, report_type, report_name, status, completed_at, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (business_id, report_id, run_id) DO UPDATE SET
                    report_type = excluded.report_type,
                    report_name = excluded.report_name,
                    status = excluded.status,
                    completed_at = CASE WHEN ?9 THEN excluded.completed_at
                                        ELSE coalesce(runs.completed_at, excluded.completed_at) END,
                    last_seen = excluded.last_seen",
                params![
                    key.business_id.as_str(),
                    key.report_id.as_str(),
                    key.run_id.as_str(),
                    report_type.as_str(),
                    report_name,
                    status,
                    completed.map(fmt_time),
                    fmt_time(now),
                    completed_at.is_some(),
                ],
            )
            .map_err(self.err(format!("recording run {}", key.run_id)))?;
        self.run(key)?
            .ok_or_else(|| self.err(format!("reading back run {}", key.run_id))(rusqlite::Error::QueryReturnedNoRows))
    }

    /// The ledger's record of a run.
    pub(crate) fn run(&self, key: &RunKey<'_>) -> Result<Option<LedgerRun>, SyncError> {
        self.conn
            .query_row(
                &format!("{RUN_COLUMNS} WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3"),
                params![key.business_id.as_str(), key.report_id.as_str(), key.run_id.as_str()],
                row_to_run,
            )
            .optional()
            .map_err(self.err(format!("reading run {}", key.run_id)))
    }

    /// Every run of `business` that is spooled, i.e. some sink still lacked it.
    pub(crate) fn spooled_runs(&self, business: &BusinessId) -> Result<Vec<LedgerRun>, SyncError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{RUN_COLUMNS} WHERE business_id = ?1 AND spool_path IS NOT NULL ORDER BY first_seen"
            ))
            .map_err(self.err("listing spooled runs"))?;
        stmt.query_map([business.as_str()], row_to_run)
            .and_then(|rows| rows.collect())
            .map_err(self.err("listing spooled runs"))
    }

    /// Every business the ledger has seen a run or an event of, sorted.
    pub fn businesses(&self) -> Result<Vec<BusinessId>, SyncError> {
        let mut stmt = self
            .conn
            .prepare("SELECT business_id FROM runs UNION SELECT business_id FROM events ORDER BY 1")
            .map_err(self.err("listing businesses"))?;
        stmt.query_map([], |row| row.get::<_, String>(0).map(BusinessId::new))
            .and_then(|rows| rows.collect())
            .map_err(self.err("listing businesses"))
    }

    /// Every run of `business`, most recently seen first.
    pub fn runs(&self, business: &BusinessId) -> Result<Vec<LedgerRun>, SyncError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{RUN_COLUMNS} WHERE business_id = ?1 ORDER BY last_seen DESC, first_seen DESC"
            ))
            .map_err(self.err("listing runs"))?;
        stmt.query_map([business.as_str()], row_to_run)
            .and_then(|rows| rows.collect())
            .map_err(self.err("listing runs"))
    }

    /// Records the spooled file of a run.
    pub(crate) fn record_spool(
        &self,
        key: &RunKey<'_>,
        path: &Path,
        bytes: u64,
        sha256: &str,
        rows: u64,
    ) -> Result<(), SyncError> {
        self.conn
            .execute(
                "UPDATE runs SET spool_path = ?4, bytes = ?5, sha256 = ?6, rows = ?7, error = NULL
                 WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3",
                params![
                    key.business_id.as_str(),
                    key.report_id.as_str(),
                    key.run_id.as_str(),
                    path.to_string_lossy(),
                    bytes as i64,
                    sha256,
                    rows as i64
                ],
            )
            .map(drop)
            .map_err(self.err(format!("recording the spool of run {}", key.run_id)))
    }

    /// Forgets the spool file (every sink has the run, or the file was quarantined).
    pub(crate) fn clear_spool(&self, key: &RunKey<'_>) -> Result<(), SyncError> {
        self.conn
            .execute(
                "UPDATE runs SET spool_path = NULL WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3",
                params![key.business_id.as_str(), key.report_id.as_str(), key.run_id.as_str()],
            )
            .map(drop)
            .map_err(self.err(format!("clearing the spool of run {}", key.run_id)))
    }

    /// Records a download or validation error of a run (`None` clears it).
    pub(crate) fn record_run_error(&self, key: &RunKey<'_>, error: Option<&str>) -> Result<(), SyncError> {
        self.conn
            .execute(
                "UPDATE runs SET error = ?4 WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3",
                params![
                    key.business_id.as_str(),
                    key.report_id.as_str(),
                    key.run_id.as_str(),
                    error
                ],
            )
            .map(drop)
            .map_err(self.err(format!("recording an error of run {}", key.run_id)))
    }

    /// Whether an earlier run of this report type had the campaign report's columns.
    pub(crate) fn is_campaign_type(&self, business: &BusinessId, report_type: &ReportType) -> Result<bool, SyncError> {
        self.conn
            .query_row(
                "SELECT 1 FROM campaign_types WHERE business_id = ?1 AND report_type = ?2",
                params![business.as_str(), report_type.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(self.err(format!("looking up the schema of report type {report_type}")))
    }

    /// Records that a run of this report type had the campaign report's columns: later
    /// runs of the type must have them too.
    pub(crate) fn record_campaign_type(&self, key: &RunKey<'_>, report_type: &ReportType) -> Result<(), SyncError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO campaign_types (business_id, report_type, first_run) VALUES (?1, ?2, ?3)",
                params![key.business_id.as_str(), report_type.as_str(), key.run_id.as_str()],
            )
            .map(drop)
            .map_err(self.err(format!("recording the schema of report type {report_type}")))
    }

    /// Names of the sinks that confirmed delivery of a run.
    pub(crate) fn delivered_sinks(&self, key: &RunKey<'_>) -> Result<HashSet<String>, SyncError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sink FROM deliveries
                 WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3 AND state = 'delivered'",
            )
            .map_err(self.err("listing deliveries"))?;
        stmt.query_map(
            params![key.business_id.as_str(), key.report_id.as_str(), key.run_id.as_str()],
            |r| r.get::<_, String>(0),
        )
        .and_then(|rows| rows.collect())
        .map_err(self.err(format!("listing deliveries of run {}", key.run_id)))
    }

    /// Every sink's record for a run.
    pub fn deliveries(
        &self,
        business: &BusinessId,
        report: &ReportId,
        run: &RunId,
    ) -> Result<Vec<LedgerDelivery>, SyncError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sink, state, attempts, location, error, updated_at FROM deliveries
                 WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3 ORDER BY sink",
            )
            .map_err(self.err("listing deliveries"))?;
        stmt.query_map(params![business.as_str(), report.as_str(), run.as_str()], |r| {
            Ok(LedgerDelivery {
                sink: r.get(0)?,
                state: r.get(1)?,
                attempts: r.get::<_, i64>(2)?.max(0) as u64,
                location: r.get(3)?,
                error: r.get(4)?,
                updated_at: parse_time(&r.get::<_, String>(5)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err("listing deliveries"))
    }

    /// Records the outcome of one delivery attempt: `Ok(location)` once the sink
    /// confirmed, `Err(message)` otherwise. A confirmed delivery is never downgraded.
    pub(crate) fn record_delivery(
        &self,
        key: &RunKey<'_>,
        sink: &str,
        outcome: Result<&str, &str>,
        now: OffsetDateTime,
    ) -> Result<(), SyncError> {
        let (state, location, error) = match outcome {
            Ok(location) => ("delivered", Some(location), None),
            Err(error) => ("failed", None, Some(error)),
        };
        self.conn
            .execute(
                "INSERT INTO deliveries (business_id, report_id, run_id, sink, state, attempts, location, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)
                 ON CONFLICT (business_id, report_id, run_id, sink) DO UPDATE SET
                    state = excluded.state, attempts = deliveries.attempts + 1,
                    location = excluded.location, error = excluded.error, updated_at = excluded.updated_at
                 WHERE deliveries.state <> 'delivered'",
                params![
                    key.business_id.as_str(),
                    key.report_id.as_str(),
                    key.run_id.as_str(),
                    sink,
                    state,
                    location,
                    error,
                    fmt_time(now)
                ],
            )
            .map(drop)
            .map_err(self.err(format!("recording delivery of run {} to {sink}", key.run_id)))
    }
}

/// Webhook events.
impl Ledger {
    /// Records the announcement of `report`'s run (which must be given) durably: when
    /// this returns, the row is committed (`synchronous=FULL`). Announcing a run again
    /// only counts the duplicate.
    pub fn record_event(
        &self,
        business: &BusinessId,
        report: &Report,
        now: OffsetDateTime,
    ) -> Result<EventRecorded, SyncError> {
        let Some(run) = &report.last_run else {
            return Err(SyncError::Options(format!(
                "an event of report {} must name a run",
                report.id
            )));
        };
        let (id, received) = self
            .conn
            .query_row(
                "INSERT INTO events (business_id, report_id, run_id, report_type, report_name, created_at,
                                     received_at, received, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 'pending')
                 ON CONFLICT (business_id, report_id, run_id) DO UPDATE SET received = events.received + 1
                 RETURNING id, received",
                params![
                    business.as_str(),
                    report.id.as_str(),
                    run.id.as_str(),
                    report.report_type.as_str(),
                    report.name,
                    run.created_at().map(fmt_time),
                    fmt_time(now),
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(self.err(format!("recording an event of run {}", run.id)))?;
        Ok(EventRecorded { id, new: received == 1 })
    }

    /// Every event of `business`, oldest first.
    pub fn events(&self, business: &BusinessId) -> Result<Vec<LedgerEvent>, SyncError> {
        self.query_events("WHERE business_id = ?1 ORDER BY id", business)
    }

    /// The pending events of `business`, oldest first (due or not).
    pub fn pending_events(&self, business: &BusinessId) -> Result<Vec<LedgerEvent>, SyncError> {
        self.query_events("WHERE business_id = ?1 AND state = 'pending' ORDER BY id", business)
    }

    fn query_events(&self, filter: &str, business: &BusinessId) -> Result<Vec<LedgerEvent>, SyncError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, business_id, report_id, run_id, report_type, report_name, created_at, received_at,
                        received, state, attempts, next_attempt, finished_at, note FROM events {filter}"
            ))
            .map_err(self.err("listing events"))?;
        stmt.query_map([business.as_str()], |r| {
            Ok(LedgerEvent {
                id: r.get(0)?,
                business_id: BusinessId::new(r.get::<_, String>(1)?),
                report_id: ReportId::new(r.get::<_, String>(2)?),
                run_id: RunId::new(r.get::<_, String>(3)?),
                report_type: ReportType::new(r.get::<_, String>(4)?),
                report_name: r.get(5)?,
                created_at: r.get::<_, Option<String>>(6)?.as_deref().and_then(parse_time),
                received_at: parse_time(&r.get::<_, String>(7)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                received: r.get::<_, i64>(8)?.max(0) as u64,
                state: r.get(9)?,
                attempts: r.get::<_, i64>(10)?.max(0) as u64,
                next_attempt: r.get::<_, Option<String>>(11)?.as_deref().and_then(parse_time),
                finished_at: r.get::<_, Option<String>>(12)?.as_deref().and_then(parse_time),
                note: r.get(13)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err("listing events"))
    }

    /// Records an attempt that finished the event (`state` `done`, or `failed` when
    /// given up), with an optional note.
    pub fn finish_event(
        &self,
        id: i64,
        failed: bool,
        note: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), SyncError> {
        self.conn
            .execute(
                "UPDATE events SET state = ?2, attempts = attempts + 1, next_attempt = NULL, finished_at = ?3,
                                   note = ?4
                 WHERE id = ?1",
                params![id, if failed { "failed" } else { "done" }, fmt_time(now), note],
            )
            .map(drop)
            .map_err(self.err(format!("finishing event {id}")))
    }

    /// Deletes finished events (`done` or `failed`) that finished before `cutoff`;
    /// pending events are never deleted. Returns how many were deleted. The server
    /// calls it so the table does not grow for ever; a webhook repeated after its
    /// event was pruned is recorded again and found already delivered.
    pub fn prune_events(&self, cutoff: OffsetDateTime) -> Result<u64, SyncError> {
        self.conn
            .execute(
                "DELETE FROM events WHERE state IN ('done', 'failed') AND finished_at IS NOT NULL
                 AND finished_at < ?1",
                params![fmt_time(cutoff)],
            )
            .map(|n| n as u64)
            .map_err(self.err("pruning finished events"))
    }

    /// Records a failed attempt of a pending event, due again at `next_attempt`.
    pub fn retry_event(&self, id: i64, error: &str, next_attempt: OffsetDateTime) -> Result<(), SyncError> {
        self.conn
            .execute(
                "UPDATE events SET attempts = attempts + 1, next_attempt = ?2, note = ?3
                 WHERE id = ?1 AND state = 'pending'",
                params![id, fmt_time(next_attempt), error],
            )
            .map(drop)
            .map_err(self.err(format!("rescheduling event {id}")))
    }

    /// Writes (and syncs) one small row: whether the ledger can be written right now.
    pub fn probe_writable(&self, now: OffsetDateTime) -> Result<(), SyncError> {
        self.conn
            .execute(
                "INSERT INTO probes (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                [fmt_time(now)],
            )
            .map(drop)
            .map_err(self.err("writing a probe row"))
    }
}

const RUN_COLUMNS: &str = "SELECT business_id, report_id, run_id, report_type, report_name, status, completed_at,
    first_seen, spool_path, bytes, sha256, rows, error FROM runs";

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRun> {
    Ok(LedgerRun {
        business_id: BusinessId::new(r.get::<_, String>(0)?),
        report_id: ReportId::new(r.get::<_, String>(1)?),
        run_id: RunId::new(r.get::<_, String>(2)?),
        report_type: ReportType::new(r.get::<_, String>(3)?),
        report_name: r.get(4)?,
        status: r.get(5)?,
        completed_at: r.get::<_, Option<String>>(6)?.as_deref().and_then(parse_time),
        first_seen: parse_time(&r.get::<_, String>(7)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        spool_path: r.get::<_, Option<String>>(8)?.map(PathBuf::from),
        bytes: r.get::<_, Option<i64>>(9)?.map(|b| b.max(0) as u64),
        sha256: r.get(10)?,
        rows: r.get::<_, Option<i64>>(11)?.map(|b| b.max(0) as u64),
        error: r.get(12)?,
    })
}
