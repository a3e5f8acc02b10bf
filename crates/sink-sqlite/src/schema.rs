//! Opening the database: pragmas, the stable schema, and the per-type tables of
//! undocumented reports.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::Error;

/// The schema version this crate writes into `PRAGMA user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// The history table of campaign-schema runs.
pub(crate) const CAMPAIGN_ROWS: &str = "campaign_rows";

/// Column names reserved in the tables of undocumented report types.
pub(crate) const GENERIC_RUN_SEQ: &str = "_run_seq";
/// See [`GENERIC_RUN_SEQ`].
pub(crate) const GENERIC_ROW_NO: &str = "_row_no";

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS connectly_runs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    business_id  TEXT    NOT NULL,
    report_id    TEXT    NOT NULL,
    report_name  TEXT    NOT NULL,
    report_type  TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    completed_at TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    bytes        INTEGER NOT NULL,
    rows         INTEGER NOT NULL,
    table_name   TEXT    NOT NULL,
    loaded_at    TEXT    NOT NULL,
    UNIQUE (business_id, report_id, run_id)
);

CREATE TABLE IF NOT EXISTS connectly_tables (
    report_type TEXT NOT NULL PRIMARY KEY,
    table_name  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_rows (
    id                   INTEGER PRIMARY KEY,
    run_seq              INTEGER NOT NULL,
    report_type          TEXT    NOT NULL,
    report_id            TEXT    NOT NULL,
    run_id               TEXT    NOT NULL,
    row_no               INTEGER NOT NULL,
    customer_external_id TEXT    NOT NULL,
    business_id          TEXT    NOT NULL,
    campaign_name        TEXT    NOT NULL,
    sendout_id           TEXT    NOT NULL,
    cnt_session_id       TEXT    NOT NULL,
    sent_at              TEXT,
    delivered_at         TEXT,
    read_at              TEXT,
    opt_out_at           TEXT,
    error_code           INTEGER,
    error_msg            TEXT,
    button_clicks        TEXT,
    link_clicks          TEXT,
    input_variables      TEXT,
    output_variables     TEXT,
    extra_columns        TEXT
);

CREATE TABLE IF NOT EXISTS campaign_latest (
    sendout_id           TEXT    NOT NULL,
    customer_external_id TEXT    NOT NULL,
    business_id          TEXT    NOT NULL,
    campaign_name        TEXT    NOT NULL,
    cnt_session_id       TEXT    NOT NULL,
    sent_at              TEXT,
    delivered_at         TEXT,
    read_at              TEXT,
    opt_out_at           TEXT,
    error_code           INTEGER,
    error_msg            TEXT,
    button_clicks        TEXT,
    link_clicks          TEXT,
    input_variables      TEXT,
    output_variables     TEXT,
    extra_columns        TEXT,
    run_seq              INTEGER NOT NULL,
    run_id               TEXT    NOT NULL,
    report_type          TEXT    NOT NULL,
    completed_at         TEXT    NOT NULL,
    row_id               INTEGER NOT NULL,
    UNIQUE (sendout_id, customer_external_id)
);
"#;

/// Opens (creating the folder and the file if missing), sets the pragmas and brings
/// the schema up to date.
pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    // No SQLITE_OPEN_URI: a path is a path, even one starting with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(Error::sqlite(format!("opening database {}", path.display())))?;
    conn.busy_timeout(busy_timeout)
        .map_err(Error::sqlite("setting the busy timeout"))?;
    // Takes effect only before the first table is created (a new file); harmless after.
    conn.pragma_update(None, "page_size", 65536_i64)
        .map_err(Error::sqlite("setting page_size"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))
        .map_err(Error::sqlite(format!(
            "setting journal_mode=DELETE on {}",
            path.display()
        )))?;
    if !mode.eq_ignore_ascii_case("delete") {
        tracing::warn!(database = %path.display(), journal_mode = %mode, "could not switch the database to journal_mode=DELETE");
    }
    for (pragma, value) in [
        ("synchronous", "FULL"),
        ("cache_size", "-16384"),
        ("foreign_keys", "OFF"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(Error::sqlite(format!("setting {pragma}={value}")))?;
    }
    migrate(&conn, path)?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> Result<i64, Error> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(Error::sqlite("reading the schema version (PRAGMA user_version)"))
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), Error> {
    let newer = |v: i64| {
        Error::Schema(format!(
            "database {} has schema version {v}, newer than this connectly-sync understands ({SCHEMA_VERSION}); \
             upgrade connectly-sync",
            path.display()
        ))
    };
    let version = user_version(conn)?;
    if version > SCHEMA_VERSION {
        return Err(newer(version));
    }
    if version < SCHEMA_VERSION {
        // IMMEDIATE: two processes creating the schema at once take turns.
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(Error::sqlite("starting the schema transaction"))?;
        let result = (|| {
            let version = user_version(conn)?;
            if version > SCHEMA_VERSION {
                return Err(newer(version));
            }
            conn.execute_batch(DDL)
                .map_err(Error::sqlite(format!("creating the tables in {}", path.display())))?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(Error::sqlite("setting the schema version"))?;
            check_columns(conn, path)?;
            conn.execute_batch("COMMIT")
                .map_err(Error::sqlite("committing the schema"))
        })();
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return result;
    }
    check_columns(conn, path)
}

/// The tables and columns the DDL creates, read from a scratch in-memory database so
/// the check below can never drift from the DDL.
fn expected_tables() -> Result<Vec<(String, Vec<String>)>, Error> {
    let doing = "building the reference schema in memory";
    let scratch = Connection::open_in_memory().map_err(Error::sqlite(doing))?;
    scratch.execute_batch(DDL).map_err(Error::sqlite(doing))?;
    let mut stmt = scratch
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(Error::sqlite(doing))?;
    let tables = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(Error::sqlite(doing))?;
    tables
        .into_iter()
        .map(|t| table_columns(&scratch, &t).map(|cols| (t, cols)))
        .collect()
}

/// Fails unless every table the DDL creates exists with all of its columns (a foreign
/// table of the same name is reported instead of half-used).
fn check_columns(conn: &Connection, path: &Path) -> Result<(), Error> {
    for (table, required) in expected_tables()? {
        let table = table.as_str();
        let present = table_columns(conn, table)?;
        if present.is_empty() {
            return Err(Error::Schema(format!(
                "database {} has schema version {SCHEMA_VERSION} but no table {table}: was it dropped?",
                path.display()
            )));
        }
        for column in &required {
            if !present.iter().any(|p| p.eq_ignore_ascii_case(column)) {
                return Err(Error::Schema(format!(
                    "table {table} in {} has no column {column}: it was not created by connectly-sync \
                     (or by an incompatible version)",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The columns of `table`, in table order; empty when the table does not exist.
pub(crate) fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>, Error> {
    let doing = || format!("reading the columns of table {table}");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(Error::sqlite(doing()))?;
    stmt.query_map([table], |row| row.get::<_, String>(0))
        .map_err(Error::sqlite(doing()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::sqlite(doing()))
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The base table name of an undocumented report type: `report_` and the type with
/// ASCII letters lowercased and every character outside `[a-z0-9_]` replaced by `_`.
pub(crate) fn sanitized_table_name(report_type: &str) -> String {
    let body: String = report_type
        .chars()
        .take(64)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("report_{body}")
}

/// The table of an undocumented report type: the recorded one, or a new free name
/// (recorded in `connectly_tables` in the caller's transaction).
pub(crate) fn generic_table(conn: &Connection, report_type: &str) -> Result<String, Error> {
    let known: Option<String> = conn
        .query_row(
            "SELECT table_name FROM connectly_tables WHERE report_type = ?1",
            [report_type],
            |row| row.get(0),
        )
        .optional()
        .map_err(Error::sqlite(format!(
            "looking up the table of report type {report_type} in connectly_tables"
        )))?;
    if let Some(table) = known {
        return Ok(table);
    }
    let base = sanitized_table_name(report_type);
    let taken = |name: &str| -> Result<bool, Error> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM connectly_tables WHERE table_name = ?1 COLLATE NOCASE)
                 OR EXISTS (SELECT 1 FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE)",
            [name],
            |row| row.get(0),
        )
        .map_err(Error::sqlite(format!("checking whether table name {name} is free")))
    };
    let mut name = base.clone();
    let mut suffix = 2_u32;
    while taken(&name)? {
        name = format!("{base}_{suffix}");
        suffix += 1;
    }
    conn.execute(
        "INSERT INTO connectly_tables (report_type, table_name, created_at)
         VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%S', 'now'))",
        params![report_type, name],
    )
    .map_err(Error::sqlite(format!(
        "recording table {name} for report type {report_type} in connectly_tables"
    )))?;
    Ok(name)
}

/// Creates the table of an undocumented report type if missing and adds the header's
/// columns it lacks (`ALTER TABLE ADD COLUMN`). Header names were validated by the caller.
pub(crate) fn ensure_generic_columns(conn: &Connection, table: &str, header: &[String]) -> Result<(), Error> {
    let quoted = quote_ident(table);
    let mut present = table_columns(conn, table)?;
    if present.is_empty() {
        let mut ddl =
            format!("CREATE TABLE {quoted} ({GENERIC_RUN_SEQ} INTEGER NOT NULL, {GENERIC_ROW_NO} INTEGER NOT NULL");
        for name in header {
            ddl.push_str(", ");
            ddl.push_str(&quote_ident(name));
            ddl.push_str(" TEXT");
        }
        ddl.push_str(");");
        ddl.push_str(&format!(
            "CREATE INDEX {} ON {quoted} ({GENERIC_RUN_SEQ}, {GENERIC_ROW_NO});",
            // `:` never appears in a sanitized table name, so the index cannot take a table's name.
            quote_ident(&format!("{table}:by_run"))
        ));
        conn.execute_batch(&ddl)
            .map_err(Error::sqlite(format!("creating table {table}")))?;
        return Ok(());
    }
    for name in header {
        if !present.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            conn.execute_batch(&format!("ALTER TABLE {quoted} ADD COLUMN {} TEXT", quote_ident(name)))
                .map_err(Error::sqlite(format!("adding column {name} to table {table}")))?;
            present.push(name.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(
            sanitized_table_name("campaign.daily.custom"),
            "report_campaign_daily_custom"
        );
        assert_eq!(sanitized_table_name("Ünïcode Type-2"), "report__n_code_type_2");
        assert_eq!(
            sanitized_table_name("\"; DROP TABLE x; --"),
            "report____drop_table_x____"
        );
        assert_eq!(sanitized_table_name(&"a".repeat(200)).len(), "report_".len() + 64);
    }

    #[test]
    fn identifiers() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
