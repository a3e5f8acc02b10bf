//! `cargo xtask demo`: the newcomer's first command.
//!
//! Builds `connectly-sync` and `connectly-vendor-fake`, serves the demo dataset on the
//! vendor stand-in (127.0.0.1, a free port), syncs it with the real binary into a
//! SQLite database and a file folder, shows what landed, syncs again to show that
//! nothing is delivered twice, and stops the stand-in (on every error path too).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util;

/// The file that marks a folder as created by the demo, so that it may be deleted.
const MARKER: &str = ".xtask-demo";
/// How long the vendor stand-in may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process that is killed and reaped when dropped.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // It may have exited already; either way, reap it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The running vendor stand-in and what it printed.
pub(crate) struct VendorFake {
    /// The process; stopped when this is dropped.
    _child: KillOnDrop,
    /// Where the API is served.
    pub(crate) base_url: String,
    /// The demo business.
    pub(crate) business: String,
    /// The demo API key.
    pub(crate) api_key: String,
}

/// `listening on URL business=ID api_key=KEY` → (URL, ID, KEY).
fn parse_listening(line: &str) -> Result<(String, String, String)> {
    let what = || {
        format!(
            "unexpected first line from connectly-vendor-fake: {:?}",
            line.trim_end()
        )
    };
    let rest = line.trim().strip_prefix("listening on ").with_context(what)?;
    let mut words = rest.split_whitespace();
    let url = words.next().with_context(what)?;
    let (mut business, mut key) = (None, None);
    for word in words {
        if let Some(v) = word.strip_prefix("business=") {
            business = Some(v);
        } else if let Some(v) = word.strip_prefix("api_key=") {
            key = Some(v);
        }
    }
    match (business, key) {
        (Some(business), Some(key)) if url.starts_with("http") => {
            Ok((url.to_owned(), business.to_owned(), key.to_owned()))
        }
        _ => Err(anyhow::anyhow!(what())),
    }
}

impl VendorFake {
    /// Starts `bin` on 127.0.0.1:0 (with `extra` arguments) and waits for its
    /// `listening on` line.
    pub(crate) fn start(bin: &Path, extra: &[&std::ffi::OsStr]) -> Result<VendorFake> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take();
        let mut child = KillOnDrop(child);
        let stdout = stdout.context("connectly-vendor-fake: no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
            // Keep draining so that the stand-in never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(read) => read.context("cannot read the output of connectly-vendor-fake")?,
            Err(_) => bail!(
                "connectly-vendor-fake printed nothing within {}s",
                STARTUP_TIMEOUT.as_secs()
            ),
        };
        if line.is_empty() {
            let status = child.0.wait().context("cannot wait for connectly-vendor-fake")?;
            bail!("connectly-vendor-fake exited before it was ready ({status}); see its error above");
        }
        let (base_url, business, api_key) = parse_listening(&line)?;
        Ok(VendorFake {
            _child: child,
            base_url,
            business,
            api_key,
        })
    }
}

/// `path` for a shell command line: single-quoted unless it is plainly safe.
fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Deletes and recreates `out`, refusing folders that hold the workspace or the
/// current folder, and non-empty folders that the demo did not create.
fn prepare_out(out: &Path, protected: &[&Path]) -> Result<()> {
    if out.exists() {
        let canonical = out
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", out.display()))?;
        for p in protected {
            if p.canonicalize().is_ok_and(|p| p.starts_with(&canonical)) {
                bail!(
                    "refusing to use {} as the demo folder: it contains {}",
                    out.display(),
                    p.display()
                );
            }
        }
        if !canonical.is_dir() {
            bail!("{} exists and is not a folder", out.display());
        }
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot list {}", out.display()))?
            .next()
            .is_none();
        if !empty && !out.join(MARKER).is_file() {
            bail!(
                "refusing to delete {}: `cargo xtask demo` did not create it (it has no {MARKER} file); \
                 remove it yourself or pick another --out",
                out.display()
            );
        }
        std::fs::remove_dir_all(out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(
        out.join(MARKER),
        "Created by `cargo xtask demo`, which deletes and recreates this folder on each run.\n",
    )
    .with_context(|| format!("cannot write into {}", out.display()))?;
    // Keeps the demo's output out of `git status` wherever it is written.
    std::fs::write(out.join(".gitignore"), "*\n").with_context(|| format!("cannot write into {}", out.display()))
}

/// Every file under `dir`, recursively, with its size, sorted by path.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", d.display()))?;
            let meta = entry
                .metadata()
                .with_context(|| format!("cannot stat {}", entry.path().display()))?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((entry.path(), meta.len()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether the `sqlite3` command-line shell can be run.
fn have_sqlite3() -> bool {
    Command::new("sqlite3")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one `sqlite3` query read-only and returns its output.
fn sqlite3(db: &Path, extra: &[&str], sql: &str) -> Result<String> {
    util::output(
        Command::new("sqlite3")
            .args(["-readonly", "-batch"])
            .args(extra)
            .arg(db)
            .arg(sql),
    )
}

/// Prints the row count of every table of `db`.
fn print_table_counts(db: &Path) -> Result<()> {
    let tables = sqlite3(
        db,
        &["-noheader"],
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let tables: Vec<&str> = tables.lines().filter(|t| !t.is_empty()).collect();
    if tables.is_empty() {
        bail!("{} has no tables", db.display());
    }
    let sql = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{}', count(*) FROM \"{}\"",
                t.replace('\'', "''"),
                t.replace('"', "\"\"")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let counts = sqlite3(db, &["-noheader", "-separator", "\t"], &sql)?;
    let width = tables.iter().map(|t| t.len()).max().unwrap_or(0);
    for line in counts.lines() {
        let (table, count) = line.split_once('\t').unwrap_or((line, "?"));
        println!("  {table:<width$}  {count:>8} rows");
    }
    Ok(())
}

/// The path of binary `name` in the debug build.
fn debug_binary(target_dir: &Path, name: &str) -> Result<PathBuf> {
    let path = target_dir
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!("{} is missing after the build", path.display());
    }
    Ok(path)
}

/// `connectly-sync sync` against `vendor`, into the sinks under `out`.
fn sync_command(bin: &Path, vendor: &VendorFake, out: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("sync")
        .arg("--sink")
        .arg(format!("sqlite:{}", out.join("connectly.db").display()))
        .arg("--sink")
        .arg(format!("file:{}", out.join("files").display()))
        .arg("--state-dir")
        .arg(out.join("state"))
        .env("CONNECTLY_API_KEY", &vendor.api_key)
        .env("CONNECTLY_BASE_URL", &vendor.base_url)
        .env("CONNECTLY_BUSINESS_ID", &vendor.business);
    cmd
}

/// Runs the sync and fails unless it exits 0.
fn run_sync(bin: &Path, vendor: &VendorFake, out: &Path) -> Result<()> {
    let mut cmd = sync_command(bin, vendor, out);
    println!("$ {}", util::describe(&cmd));
    util::run(&mut cmd).context("the sync did not complete (exit 1: a run or sink failed; 2: usage; 3: could not run)")
}

/// Runs the demo, writing into `out` (default: `demo-out/` at the workspace root).
pub(crate) fn run(out: Option<PathBuf>) -> Result<()> {
    let root = util::workspace_root()?;
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let out_abs = match out {
        Some(dir) => cwd.join(dir),
        None => root.join("demo-out"),
    };
    // Shown and passed to the sync relative to the current folder when inside it.
    let out = match out_abs.strip_prefix(&cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => out_abs.clone(),
    };

    println!("==> preparing {} (deleted and recreated on each run)", out.display());
    prepare_out(&out_abs, &[&root, &cwd])?;

    println!("\n==> building connectly-sync and connectly-vendor-fake (debug)");
    util::run(&mut util::cargo(&[
        "build",
        "-p",
        "connectly-sync",
        "-p",
        "connectly-vendor-fake",
    ])?)?;
    let meta = util::cargo_metadata(&["--no-deps"])?;
    let target_dir = PathBuf::from(
        meta.get("target_directory")
            .and_then(Value::as_str)
            .context("cargo metadata: no target_directory")?,
    );
    let sync_bin = debug_binary(&target_dir, "connectly-sync")?;
    // Shown (and run) relative to the current folder when inside it.
    let sync_bin = sync_bin.strip_prefix(&cwd).map_or(sync_bin.clone(), Path::to_path_buf);
    let fake_bin = debug_binary(&target_dir, "connectly-vendor-fake")?;

    println!("\n==> starting the vendor stand-in, serving the demo dataset");
    let vendor = VendorFake::start(&fake_bin, &[])?;
    println!(
        "    {} business={} api_key={}",
        vendor.base_url, vendor.business, vendor.api_key
    );

    println!("\n==> syncing into SQLite and files");
    run_sync(&sync_bin, &vendor, &out)?;

    let db = out.join("connectly.db");
    println!("\n==> what landed in {}", db.display());
    let sqlite = have_sqlite3();
    if sqlite {
        print_table_counts(&db)?;
    } else {
        println!("  (the sqlite3 command is not installed, so the table counts are skipped)");
    }

    let files_dir = out.join("files");
    println!("\n==> what landed in {}", files_dir.display());
    let files = list_files(&files_dir)?;
    if files.is_empty() {
        bail!("the file sink wrote nothing into {}", files_dir.display());
    }
    for (path, size) in &files {
        let shown = path.strip_prefix(&files_dir).unwrap_or(path);
        println!("  {size:>10} B  {}", shown.display());
    }
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    println!("  {total:>10} B  in {} files", files.len());

    println!("\n==> syncing again: nothing new, so nothing is delivered twice");
    run_sync(&sync_bin, &vendor, &out)?;

    drop(vendor);
    println!("\n==> stopped the vendor stand-in");

    let db_arg = shell_quote(&db);
    let latest_sql = "SELECT campaign_name, sendout_id, customer_external_id, sent_at, read_at \
                      FROM campaign_latest LIMIT 5";
    if sqlite {
        println!("\n==> a taste of campaign_latest (the latest row per send-out and customer)");
        print!("{}", sqlite3(&db, &["-header", "-column"], latest_sql)?);
    }
    println!("\nTry it yourself:");
    println!("  sqlite3 -header -column {db_arg} '{latest_sql}'");
    println!(
        "  sqlite3 -header -column {db_arg} 'SELECT campaign_name, count(*) AS recipients, count(delivered_at) AS \
         delivered, count(read_at) AS read FROM campaign_latest GROUP BY campaign_name'"
    );
    println!(
        "  sqlite3 -header -column {db_arg} 'SELECT seq, report_type, run_id, rows, completed_at FROM connectly_runs'"
    );
    println!("  cargo run -p connectly-sync -- sync --help");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() -> Result<()> {
        let (url, business, key) =
            parse_listening("listening on http://127.0.0.1:43117 business=7f0c-aa api_key=demo-key\n")?;
        assert_eq!(url, "http://127.0.0.1:43117");
        assert_eq!(business, "7f0c-aa");
        assert_eq!(key, "demo-key");
        assert!(parse_listening("").is_err());
        assert!(parse_listening("listening on http://127.0.0.1:1 business=x").is_err());
        assert!(parse_listening("error: address in use").is_err());
        Ok(())
    }

    #[test]
    fn quotes_paths_for_the_shell() {
        assert_eq!(shell_quote(Path::new("demo-out/connectly.db")), "demo-out/connectly.db");
        assert_eq!(shell_quote(Path::new("my demo/it's.db")), r"'my demo/it'\''s.db'");
    }

    #[test]
    fn prepare_out_only_deletes_what_it_created() -> Result<()> {
        let base = std::env::temp_dir().join(format!("xtask-demo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let out = base.join("out");
        let result = (|| -> Result<()> {
            // A fresh folder gets the marker; a marked folder is emptied on the next run.
            prepare_out(&out, &[])?;
            assert!(out.join(MARKER).is_file());
            std::fs::write(out.join("old.txt"), "old")?;
            prepare_out(&out, &[])?;
            assert!(!out.join("old.txt").exists());
            // A non-empty folder without the marker is left alone.
            std::fs::remove_file(out.join(MARKER))?;
            std::fs::write(out.join("precious.txt"), "keep")?;
            assert!(prepare_out(&out, &[]).is_err());
            assert!(out.join("precious.txt").is_file());
            // A folder holding the workspace is never a demo folder, marker or not.
            std::fs::write(base.join(MARKER), "")?;
            assert!(prepare_out(&base, &[&out]).is_err());
            assert!(out.join("precious.txt").is_file());
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}
