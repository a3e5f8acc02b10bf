//! One run, one transaction: read the spool once (hashing it on the way), insert its
//! rows, verify, update `campaign_latest`, commit.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::mpsc;

use connectly_csv::{CampaignRow, CsvError, JsonText, ReportReader, Schema, Timestamp};
use connectly_sink::{RunData, RunInfo};
use rusqlite::{Connection, OptionalExtension, Statement, Transaction, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::error::{Error, SpoolMismatch};
use crate::schema::{self, CAMPAIGN_ROWS, GENERIC_ROW_NO, GENERIC_RUN_SEQ, quote_ident};

/// What a delivery did.
pub(crate) struct Loaded {
    /// The table holding the run's rows.
    pub(crate) table: String,
    /// The run's `connectly_runs.seq`.
    pub(crate) seq: i64,
    /// Data rows in the run.
    pub(crate) rows: u64,
    /// True when the run was already there with the same content.
    pub(crate) already_present: bool,
}

/// Room for the row number in a row id (`seq << 32 | row_no`).
const ROW_BITS: u32 = 32;

const INSERT_CAMPAIGN_ROW: &str = "INSERT INTO campaign_rows (
    id, run_seq, report_type, report_id, run_id, row_no,
    customer_external_id, business_id, campaign_name, sendout_id, cnt_session_id,
    sent_at, delivered_at, read_at, opt_out_at, error_code, error_msg,
    button_clicks, link_clicks, input_variables, output_variables, extra_columns)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

/// One set-based upsert per run; an older run delivered late does not overwrite rows
/// of a newer one (ties on `completed_at` go to the later-loaded run).
const UPSERT_LATEST: &str = "INSERT INTO campaign_latest (
    sendout_id, customer_external_id, business_id, campaign_name, cnt_session_id,
    sent_at, delivered_at, read_at, opt_out_at, error_code, error_msg,
    button_clicks, link_clicks, input_variables, output_variables, extra_columns,
    run_seq, run_id, report_type, completed_at, row_id)
SELECT sendout_id, customer_external_id, business_id, campaign_name, cnt_session_id,
    sent_at, delivered_at, read_at, opt_out_at, error_code, error_msg,
    button_clicks, link_clicks, input_variables, output_variables, extra_columns,
    run_seq, run_id, report_type, ?4, id
FROM campaign_rows
WHERE run_seq = ?1 AND id BETWEEN ?2 AND ?3
ORDER BY id
ON CONFLICT (sendout_id, customer_external_id) DO UPDATE SET
    business_id = excluded.business_id,
    campaign_name = excluded.campaign_name,
    cnt_session_id = excluded.cnt_session_id,
    sent_at = excluded.sent_at,
    delivered_at = excluded.delivered_at,
    read_at = excluded.read_at,
    opt_out_at = excluded.opt_out_at,
    error_code = excluded.error_code,
    error_msg = excluded.error_msg,
    button_clicks = excluded.button_clicks,
    link_clicks = excluded.link_clicks,
    input_variables = excluded.input_variables,
    output_variables = excluded.output_variables,
    extra_columns = excluded.extra_columns,
    run_seq = excluded.run_seq,
    run_id = excluded.run_id,
    report_type = excluded.report_type,
    completed_at = excluded.completed_at,
    row_id = excluded.row_id
WHERE (excluded.completed_at, excluded.run_seq) >= (campaign_latest.completed_at, campaign_latest.run_seq)";

/// A reader that counts and hashes every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    /// Reads whatever is left (nothing after a complete parse), then returns the size
    /// and the lowercase hex SHA-256 of everything read.
    fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, hex::encode(self.hasher.finalize())))
    }
}

/// Whether the database holds `run` with content `sha256`.
pub(crate) fn holds(conn: &Connection, run: &RunInfo, sha256: &str) -> Result<bool, Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM connectly_runs
             WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3 AND sha256 = ?4)",
        params![
            run.business_id.as_str(),
            run.report_id.as_str(),
            run.run_id.as_str(),
            sha256
        ],
        |row| row.get(0),
    )
    .map_err(Error::sqlite(format!(
        "looking up run {} in connectly_runs",
        run.run_id
    )))
}

/// Loads one run in one transaction (see the crate docs for what lands where).
pub(crate) fn deliver(conn: &mut Connection, run: &RunInfo, data: &RunData) -> Result<Loaded, Error> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Error::sqlite("starting the write transaction"))?;

    let existing: Option<(i64, String, String, i64)> = tx
        .query_row(
            "SELECT seq, sha256, table_name, rows FROM connectly_runs
             WHERE business_id = ?1 AND report_id = ?2 AND run_id = ?3",
            params![run.business_id.as_str(), run.report_id.as_str(), run.run_id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(Error::sqlite(format!(
            "looking up run {} in connectly_runs",
            run.run_id
        )))?;
    if let Some((seq, held, table, rows)) = existing {
        if held == data.sha256 {
            // Nothing changed: the transaction rolls back when dropped.
            return Ok(Loaded {
                table,
                seq,
                rows: u64::try_from(rows).unwrap_or_default(),
                already_present: true,
            });
        }
        return Err(Error::Conflict {
            run_id: run.run_id.to_string(),
            report_id: run.report_id.to_string(),
            held: held.chars().take(12).collect(),
            offered: data.sha256.chars().take(12).collect(),
        });
    }

    let spool_error = |source: io::Error| Error::Spool {
        run_id: run.run_id.to_string(),
        path: data.path.clone(),
        source,
    };
    let file = File::open(&data.path).map_err(spool_error)?;
    let mut hashing = Hashing {
        inner: file,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let loaded = load_rows(&tx, &mut hashing, run, data);
    let (bytes, sha256) = hashing.finish().map_err(spool_error)?;
    let mismatch = bytes != data.bytes || sha256 != data.sha256;
    let loaded = match loaded {
        // Corrupt spool content usually also breaks the CSV: name the root cause first.
        Err(Error::Csv { source, .. }) if mismatch => {
            return Err(mismatch_error(
                run,
                data,
                bytes,
                sha256,
                format!("; the CSV also failed: {source}"),
            ));
        }
        Err(e) => return Err(e),
        Ok(_) if mismatch => return Err(mismatch_error(run, data, bytes, sha256, String::new())),
        Ok(loaded) => loaded,
    };
    if loaded.rows != data.rows {
        tracing::warn!(
            run_id = %run.run_id,
            declared = data.rows,
            found = loaded.rows,
            "the spool's declared row count differs from the rows read; storing the rows read"
        );
    }
    tx.execute(
        "UPDATE connectly_runs SET rows = ?2 WHERE seq = ?1",
        params![loaded.seq, i64::try_from(loaded.rows).unwrap_or(i64::MAX)],
    )
    .map_err(Error::sqlite(format!("recording the row count of run {}", run.run_id)))?;
    if loaded.table == CAMPAIGN_ROWS {
        let first = loaded.seq << ROW_BITS;
        tx.execute(
            UPSERT_LATEST,
            params![loaded.seq, first, first | 0xFFFF_FFFF, loaded.completed_at],
        )
        .map_err(Error::sqlite(format!(
            "updating campaign_latest from run {} (seq {})",
            run.run_id, loaded.seq
        )))?;
    }
    tx.commit()
        .map_err(Error::sqlite(format!("committing run {}", run.run_id)))?;
    Ok(Loaded {
        table: loaded.table,
        seq: loaded.seq,
        rows: loaded.rows,
        already_present: false,
    })
}

fn mismatch_error(run: &RunInfo, data: &RunData, got_bytes: u64, got_sha: String, csv_note: String) -> Error {
    Error::Mismatch(Box::new(SpoolMismatch {
        run_id: run.run_id.to_string(),
        path: data.path.clone(),
        got_bytes,
        got_sha,
        want_bytes: data.bytes,
        want_sha: data.sha256.clone(),
        csv_note,
    }))
}

/// The rows of a run, inserted but not yet verified or committed.
struct Rows {
    table: String,
    seq: i64,
    rows: u64,
    completed_at: String,
}

/// Parses the spool through `input`, records the run in `connectly_runs` and inserts
/// every row into its table.
fn load_rows<R: Read + Send>(tx: &Transaction<'_>, input: R, run: &RunInfo, data: &RunData) -> Result<Rows, Error> {
    let csv_error = |source: CsvError| Error::Csv {
        run_id: run.run_id.to_string(),
        path: data.path.clone(),
        source: Box::new(source),
    };
    let mut reader = ReportReader::new(BufReader::with_capacity(256 * 1024, input)).map_err(csv_error)?;
    let table = match reader.schema() {
        Schema::Campaign { .. } => CAMPAIGN_ROWS.to_owned(),
        Schema::Generic => {
            check_generic_header(reader.header().names(), run)?;
            let table = schema::generic_table(tx, run.report_type.as_str())?;
            schema::ensure_generic_columns(tx, &table, reader.header().names())?;
            table
        }
    };
    let (seq, completed_at) = record_run(tx, run, data, &table)?;
    let rows = if table == CAMPAIGN_ROWS {
        load_campaign(tx, &mut reader, run, seq, &csv_error)?
    } else {
        load_generic(tx, &mut reader, run, seq, &table, &csv_error)?
    };
    Ok(Rows {
        table,
        seq,
        rows,
        completed_at,
    })
}

/// Inserts the run's `connectly_runs` row (rows counted later); returns its seq and
/// its `completed_at` as stored.
fn record_run(tx: &Transaction<'_>, run: &RunInfo, data: &RunData, table: &str) -> Result<(i64, String), Error> {
    let (seq, completed_at): (i64, String) = tx
        .query_row(
            "INSERT INTO connectly_runs (business_id, report_id, report_name, report_type, run_id,
                 completed_at, sha256, bytes, rows, table_name, loaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, datetime(?6, 'unixepoch'), ?7, ?8, 0, ?9,
                 strftime('%Y-%m-%d %H:%M:%S', 'now'))
             RETURNING seq, completed_at",
            params![
                run.business_id.as_str(),
                run.report_id.as_str(),
                run.report_name,
                run.report_type.as_str(),
                run.run_id.as_str(),
                run.completed_at.unix_timestamp(),
                // Both verified against the spool before commit.
                data.sha256,
                i64::try_from(data.bytes).unwrap_or(i64::MAX),
                table,
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(Error::sqlite(format!("recording run {} in connectly_runs", run.run_id)))?;
    if seq >= 1 << 31 {
        return Err(Error::Unstorable {
            run_id: run.run_id.to_string(),
            problem: format!("connectly_runs.seq reached {seq}: row ids (seq << 32 | row) would overflow"),
        });
    }
    Ok((seq, completed_at))
}

fn too_many_rows(run: &RunInfo) -> Error {
    Error::Unstorable {
        run_id: run.run_id.to_string(),
        problem: format!("more than {} rows in one run", u32::MAX),
    }
}

/// Rows handed from the parsing thread to the inserting one at a time.
const BATCH_ROWS: usize = 1024;

/// A cell's text in [`Batch::text`], or SQL NULL.
#[derive(Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    const NULL: Span = Span {
        start: usize::MAX,
        end: 0,
    };
}

/// One parsed and validated campaign row; its text lives in the batch.
#[derive(Clone, Copy)]
struct PackedRow {
    /// The 15 documented columns (`error_code`, column 10, is in `error_code`).
    cells: [Span; 15],
    error_code: Option<i64>,
    /// `extra_columns` as a JSON object, or NULL.
    extra: Span,
}

/// Parsed rows and their text: two allocations reused for the whole load, whatever
/// the number of rows.
#[derive(Default)]
struct Batch {
    text: String,
    rows: Vec<PackedRow>,
}

impl Batch {
    fn push(&mut self, cell: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(cell);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn push_opt(&mut self, cell: Option<&str>) -> Span {
        cell.map_or(Span::NULL, |c| self.push(c))
    }

    fn get(&self, span: Span) -> Option<&str> {
        (span.start != usize::MAX).then(|| self.text.get(span.start..span.end).unwrap_or_default())
    }

    /// Appends one row; `extra_keys` are the JSON-escaped names of the extra columns.
    fn pack(&mut self, row: &CampaignRow<'_>, extra_keys: &[String]) {
        let mut cells = [Span::NULL; 15];
        cells[0] = self.push(row.customer_external_id);
        cells[1] = self.push(row.business_id);
        cells[2] = self.push(row.campaign_name);
        cells[3] = self.push(row.sendout_id);
        cells[4] = self.push(row.cnt_session_id);
        cells[5] = self.push_opt(ts(row.sent_at));
        cells[6] = self.push_opt(ts(row.delivered_at));
        cells[7] = self.push_opt(ts(row.read_at));
        cells[8] = self.push_opt(ts(row.opt_out_at));
        cells[10] = self.push_opt(row.error_msg);
        cells[11] = self.push_opt(json(&row.button_clicks));
        cells[12] = self.push_opt(json(&row.link_clicks));
        cells[13] = self.push_opt(json(&row.input_variables));
        cells[14] = self.push_opt(json(&row.output_variables));
        let extra = if extra_keys.is_empty() {
            Span::NULL
        } else {
            let start = self.text.len();
            self.text.push('{');
            for (i, (key, value)) in extra_keys.iter().zip(row.extra_cells()).enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push(':');
                self.text.push_str(&json_string(value));
            }
            self.text.push('}');
            Span {
                start,
                end: self.text.len(),
            }
        };
        self.rows.push(PackedRow {
            cells,
            error_code: row.error_code,
            extra,
        });
    }
}

/// Parses and validates the rest of `reader` (on the parsing thread), sending full
/// batches to `full` and reusing those that come back on `empty`. Stops at the end of
/// the file, at the first CSV error (sent), or when the receiver is gone.
fn parse_batches<R: Read>(
    reader: &mut ReportReader<R>,
    extra_keys: &[String],
    full: &mpsc::SyncSender<Result<Batch, CsvError>>,
    empty: &mpsc::Receiver<Batch>,
) {
    let mut batch = Batch::default();
    loop {
        match reader.next_campaign_row() {
            Ok(Some(row)) => {
                batch.pack(&row, extra_keys);
                if batch.rows.len() < BATCH_ROWS {
                    continue;
                }
            }
            Ok(None) => {
                if !batch.rows.is_empty() {
                    let _ = full.send(Ok(batch));
                }
                return;
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        }
        let mut next = empty.try_recv().unwrap_or_default();
        next.text.clear();
        next.rows.clear();
        if full.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
            return;
        }
    }
}

fn load_campaign<R: Read + Send>(
    tx: &Transaction<'_>,
    reader: &mut ReportReader<R>,
    run: &RunInfo,
    seq: i64,
    csv_error: &dyn Fn(CsvError) -> Error,
) -> Result<u64, Error> {
    // Keys of `extra_columns`, JSON-escaped once.
    let extra_keys: Vec<String> = match reader.schema() {
        Schema::Campaign { extra_columns } => extra_columns.iter().map(|name| json_string(name)).collect(),
        Schema::Generic => Vec::new(),
    };
    let insert_error = |row_no: u64| {
        move |source| Error::Sqlite {
            doing: format!("inserting row {row_no} of run {} into campaign_rows", run.run_id),
            source,
        }
    };
    // One statement for the whole load: no prepare (or cache lookup) per row.
    let mut stmt = tx.prepare(INSERT_CAMPAIGN_ROW).map_err(insert_error(0))?;
    bind(&mut stmt, 2, seq, 0, &insert_error)?;
    bind(&mut stmt, 3, run.report_type.as_str(), 0, &insert_error)?;
    bind(&mut stmt, 4, run.report_id.as_str(), 0, &insert_error)?;
    bind(&mut stmt, 5, run.run_id.as_str(), 0, &insert_error)?;
    // Parsing and validating (and hashing the spool) run on a second thread while this
    // one inserts: a bounded queue of two batches keeps memory flat.
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch, CsvError>>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    let extra_keys = &extra_keys;
    let mut insert = |batches: mpsc::Receiver<Result<Batch, CsvError>>| -> Result<u64, Error> {
        let mut row_no: u64 = 0;
        for batch in batches {
            let batch = batch.map_err(csv_error)?;
            for row in &batch.rows {
                row_no += 1;
                if row_no > u64::from(u32::MAX) {
                    return Err(too_many_rows(run));
                }
                let id = (seq << ROW_BITS) | row_no as i64;
                bind(&mut stmt, 1, id, row_no, &insert_error)?;
                bind(&mut stmt, 6, row_no as i64, row_no, &insert_error)?;
                for (i, &span) in row.cells.iter().enumerate() {
                    if i == 9 {
                        bind(&mut stmt, 16, row.error_code, row_no, &insert_error)?;
                    } else {
                        // Columns 1-9 bind to ?7-?15, 11-15 to ?17-?21.
                        bind(&mut stmt, i + 7, batch.get(span), row_no, &insert_error)?;
                    }
                }
                bind(&mut stmt, 22, batch.get(row.extra), row_no, &insert_error)?;
                stmt.raw_execute().map_err(insert_error(row_no))?;
            }
            // The parser may be gone already (end of file): the batch is simply dropped.
            let _ = empty_tx.send(batch);
        }
        Ok(row_no)
    };
    std::thread::scope(|scope| {
        scope.spawn(move || parse_batches(reader, extra_keys, &full_tx, &empty_rx));
        // `insert` owns the receiver: returning early (an error) drops it, which stops
        // the parser before the scope waits for it.
        insert(full_rx)
    })
}

fn load_generic<R: Read>(
    tx: &Transaction<'_>,
    reader: &mut ReportReader<R>,
    run: &RunInfo,
    seq: i64,
    table: &str,
    csv_error: &dyn Fn(CsvError) -> Error,
) -> Result<u64, Error> {
    let names = reader.header().names();
    let mut sql = format!(
        "INSERT INTO {} ({GENERIC_RUN_SEQ}, {GENERIC_ROW_NO}",
        quote_ident(table)
    );
    for name in names {
        sql.push_str(", ");
        sql.push_str(&quote_ident(name));
    }
    sql.push_str(") VALUES (?1, ?2");
    for i in 0..names.len() {
        sql.push_str(&format!(", ?{}", i + 3));
    }
    sql.push(')');
    let insert_error = |row_no: u64| {
        move |source| Error::Sqlite {
            doing: format!("inserting row {row_no} of run {} into {table}", run.run_id),
            source,
        }
    };
    let mut stmt = tx.prepare(&sql).map_err(insert_error(0))?;
    bind(&mut stmt, 1, seq, 0, &insert_error)?;
    let mut row_no: u64 = 0;
    while let Some(row) = reader.next_raw_row().map_err(csv_error)? {
        row_no += 1;
        if row_no > u64::from(u32::MAX) {
            return Err(too_many_rows(run));
        }
        bind(&mut stmt, 2, row_no as i64, row_no, &insert_error)?;
        for (i, cell) in row.cells().enumerate() {
            bind(&mut stmt, i + 3, cell, row_no, &insert_error)?;
        }
        stmt.raw_execute().map_err(insert_error(row_no))?;
    }
    Ok(row_no)
}

/// Binds one parameter; the error names the row (formatted only on failure).
fn bind<T, E>(
    stmt: &mut Statement<'_>,
    index: usize,
    value: T,
    row_no: u64,
    error: &impl Fn(u64) -> E,
) -> Result<(), Error>
where
    T: rusqlite::ToSql,
    E: FnOnce(rusqlite::Error) -> Error,
{
    stmt.raw_bind_parameter(index, value).map_err(error(row_no))
}

fn ts<'a>(t: Option<Timestamp<'a>>) -> Option<&'a str> {
    t.map(|t| t.as_str())
}

fn json<'a>(j: &'a Option<JsonText<'_>>) -> Option<&'a str> {
    j.as_ref().map(JsonText::as_str)
}

fn json_string(value: &str) -> String {
    // Serializing a string cannot fail; fall back to a null just in case.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Rejects header names the table of an undocumented type cannot hold.
fn check_generic_header(names: &[String], run: &RunInfo) -> Result<(), Error> {
    let unstorable = |problem: String| Error::Unstorable {
        run_id: run.run_id.to_string(),
        problem,
    };
    for (i, name) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case(GENERIC_RUN_SEQ) || name.eq_ignore_ascii_case(GENERIC_ROW_NO) {
            return Err(unstorable(format!(
                "column {} `{name}` of report type {} clashes with the column {} the sink adds to every \
                 table of an undocumented report type",
                i + 1,
                run.report_type,
                name.to_ascii_lowercase()
            )));
        }
        if name.contains('\0') {
            return Err(unstorable(format!("column {} has a NUL character in its name", i + 1)));
        }
        if let Some(j) = names[..i].iter().position(|other| other.eq_ignore_ascii_case(name)) {
            return Err(unstorable(format!(
                "columns {} `{}` and {} `{name}` differ only in letter case, which SQLite column names do not distinguish",
                j + 1,
                names[j],
                i + 1
            )));
        }
    }
    Ok(())
}
