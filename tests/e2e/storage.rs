//! A full disk (ENOSPC) or a read-only file system (EROFS) under the state folder or a
//! sink: a clear error naming the place, the other sinks unaffected, nothing recorded as
//! delivered that was not, and the next sync converges once the storage is back.
//!
//! The tests run as root (permission bits do not stop root), so the failures come from
//! real small `tmpfs` mounts, made by [`Tmpfs`] and always unmounted when it is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use connectly_e2e::*;

/// Rows of the runs written to the small file systems: about 1 MB of CSV.
const ROWS: usize = 3_300;

/// A `tmpfs` of a given size mounted on a folder; unmounted (lazily if need be) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a `tmpfs` of `size` (as `mount -o size=` takes it) on `path`, created if
    /// missing. Fails the test when `mount` fails: these tests must not pass by skipping.
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("the `mount` command runs");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs on {} failed (these tests need root and tmpfs): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.to_owned() }
    }

    /// `mount -o remount,OPTS`, e.g. `ro` or `rw`.
    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.path)
            .output()
            .expect("the `mount` command runs");
        assert!(
            out.status.success(),
            "remounting {} with {opts} failed: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// The ledger's record of `sink` for `run`: `delivered`, `failed`, or nothing.
fn ledger_state(w: &World, state: &str, run: &str, sink: &str) -> Vec<String> {
    sqlite3(
        &w.path(state).join("ledger.db"),
        &format!("SELECT state FROM deliveries WHERE run_id = '{run}' AND sink = '{sink}'"),
    )
}

/// Runs `sync --json` with the given extra arguments and sinks; asserts the exit code.
fn sync_with(w: &World, extra: &[&str], sinks: &[&str], expect_code: i32) -> (serde_json::Value, Run) {
    let mut args = vec!["sync", "--json"];
    args.extend(extra);
    for s in sinks {
        args.extend(["--sink", s]);
    }
    let run = w.run(&args);
    assert_eq!(run.code(), expect_code, "unexpected exit code\n{run:?}");
    (run.json(), run)
}

/// Nothing but folders under `root`: no final name, no temporary file left behind.
fn assert_no_files(root: &Path) {
    let files = files_under(root);
    assert!(files.is_empty(), "files left under {}: {files:?}", root.display());
}

const CSV_KEY: &str =
    "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv";
const MANIFEST_KEY: &str = "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.manifest.json";

/// The file sink on a broken mount fails with `expect` in its message and the given
/// classification while SQLite gets the run; once the mount is dropped (full) or made
/// writable again (read-only), the next sync delivers the run to the file sink from the
/// spool, byte-identical.
fn file_sink_on_broken_mount(size: &str, read_only: bool, expect: &str, expect_retriable: bool) {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", "campaign.daily.v1", ROWS, 1);
    assert!(
        csv.len() > 900_000,
        "the run must outgrow the tmpfs: {} bytes",
        csv.len()
    );
    let mnt = w.path("mnt");
    let fs = Tmpfs::mount(&mnt, size);
    if read_only {
        fs.remount("ro");
    }
    let sinks = ["sqlite:db.sqlite", "file:mnt/files"];
    let (first, _) = sync_with(&w, &[], &sinks, 1);
    assert_eq!(first["ok"], false, "{first:#}");
    let outcomes = &first["reports"][0]["sinks"];
    assert_eq!(outcomes[0]["sink"], "sqlite:db.sqlite", "{first:#}");
    assert_eq!(outcomes[0]["outcome"], "delivered", "{first:#}");
    assert_eq!(outcomes[1]["outcome"], "failed", "{first:#}");
    let error = outcomes[1]["error"].as_str().unwrap();
    assert!(error.starts_with("file:mnt/files"), "the error names the sink: {error}");
    assert!(error.contains(expect), "the error says why: {error}");
    assert_eq!(outcomes[1]["retriable"], expect_retriable, "{first:#}");
    // SQLite has all of it; the file sink has nothing, not even a temporary file.
    let db = w.path("db.sqlite");
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), ROWS as u64);
    assert_no_files(&mnt);
    assert_eq!(
        ledger_state(&w, ".connectly-sync", "run-1", "file:mnt/files"),
        ["failed"]
    );
    assert_eq!(
        ledger_state(&w, ".connectly-sync", "run-1", "sqlite:db.sqlite"),
        ["delivered"]
    );

    // A second sync on the broken storage changes nothing and marks nothing.
    let (again, _) = sync_with(&w, &[], &sinks, 1);
    assert_eq!(again["reports"][0]["sinks"][1]["outcome"], "failed", "{again:#}");
    assert_no_files(&mnt);

    if read_only {
        // Writable again (an 8 MiB file system, room enough).
        fs.remount("rw");
    } else {
        drop(fs);
    }
    let (second, _) = sync_with(&w, &[], &sinks, 0);
    let outcomes = &second["reports"][0]["sinks"];
    assert_eq!(outcomes[0]["outcome"], "already_delivered", "{second:#}");
    assert_eq!(outcomes[1]["outcome"], "delivered", "{second:#}");
    assert_eq!(
        w.vendor.downloads("daily", "run-1"),
        1,
        "run-1 must come from the spool"
    );
    assert_eq!(std::fs::read(mnt.join("files").join(CSV_KEY)).unwrap(), csv);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join("files").join(MANIFEST_KEY)).unwrap()).unwrap();
    assert_eq!(manifest["sha256"], sha256(&csv));
    assert_eq!(
        ledger_state(&w, ".connectly-sync", "run-1", "file:mnt/files"),
        ["delivered"]
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), ROWS as u64);
}

#[test]
fn a_file_sink_on_a_full_disk_fails_retriably_and_the_others_still_deliver() {
    file_sink_on_broken_mount("256k", false, "No space left on device", true);
}

#[test]
fn a_file_sink_on_a_read_only_file_system_fails_permanently_and_the_others_still_deliver() {
    file_sink_on_broken_mount("8m", true, "Read-only file system", false);
}

#[test]
fn a_sqlite_sink_on_a_full_disk_loads_nothing_and_stays_consistent() {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", "campaign.daily.v1", ROWS, 1);
    let mnt = w.path("mnt");
    let fs = Tmpfs::mount(&mnt, "2m");
    let sinks = ["sqlite:mnt/db.sqlite", "file:files"];
    let (first, _) = sync_with(&w, &[], &sinks, 1);
    let outcomes = &first["reports"][0]["sinks"];
    assert_eq!(outcomes[0]["outcome"], "failed", "{first:#}");
    let error = outcomes[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("sqlite:mnt/db.sqlite"),
        "the error names the sink: {error}"
    );
    // The schema fits; the run's rows (about 3 MiB of 64 KiB pages) do not.
    assert!(
        error.contains("committing run run-1") && error.contains("database or disk is full"),
        "the error names the run and says the disk is full: {error}"
    );
    assert_eq!(outcomes[0]["retriable"], true, "{first:#}");
    assert_eq!(outcomes[1]["outcome"], "delivered", "{first:#}");
    assert_eq!(std::fs::read(w.path("files").join(CSV_KEY)).unwrap(), csv);
    assert_eq!(
        ledger_state(&w, ".connectly-sync", "run-1", "sqlite:mnt/db.sqlite"),
        ["failed"]
    );
    // The database is whole and has nothing of the run.
    let db = mnt.join("db.sqlite");
    assert!(db.exists(), "the database was created before the disk filled up");
    assert_eq!(sqlite3(&db, "PRAGMA integrity_check"), ["ok"]);
    assert!(!mnt.join("db.sqlite-journal").exists(), "no hot journal is left behind");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs WHERE run_id = 'run-1'"),
        0
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), 0);

    // Unmounted, the path is empty: a new database is created and loaded from the spool.
    drop(fs);
    let (second, _) = sync_with(&w, &[], &sinks, 0);
    let outcomes = &second["reports"][0]["sinks"];
    assert_eq!(outcomes[0]["outcome"], "delivered", "{second:#}");
    assert_eq!(outcomes[1]["outcome"], "already_delivered", "{second:#}");
    assert_eq!(
        w.vendor.downloads("daily", "run-1"),
        1,
        "run-1 must come from the spool"
    );
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), ROWS as u64);
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs WHERE run_id = 'run-1'"),
        1
    );
    assert_eq!(
        ledger_state(&w, ".connectly-sync", "run-1", "sqlite:mnt/db.sqlite"),
        ["delivered"]
    );
}

#[test]
fn a_full_state_folder_fails_the_sync_cleanly_and_no_sink_receives_anything() {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", "campaign.daily.v1", ROWS, 1);
    let mnt = w.path("mnt");
    let fs = Tmpfs::mount(&mnt, "256k");
    let state = ["--state-dir", "mnt/state"];
    let sinks = ["sqlite:db.sqlite", "file:files"];
    let mut args = vec!["sync", "--json"];
    args.extend(state);
    for s in sinks {
        args.extend(["--sink", s]);
    }
    let run = w.run(&args);
    // The listing worked, so the sync ran and this run failed: exit 1 (README: "`1` the
    // sync ran but a run or a sink failed"), not 3 ("could not run").
    assert_eq!(run.code(), 1, "{run:?}");
    let out = run.json();
    assert_eq!(out["ok"], false, "{run:?}");
    let report = &out["reports"][0];
    assert_eq!(report["action"], "failed", "{run:?}");
    assert_eq!(report["sinks"], serde_json::json!([]), "no sink was tried: {run:?}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("mnt/state"), "the error names the state folder: {error}");
    assert!(
        error.contains("No space left"),
        "the error says the disk is full: {error}"
    );
    // The partial download is not left to fill the disk; the ledger has no delivery.
    let spooled = files_under(&mnt.join("state/spool"));
    assert!(spooled.is_empty(), "{spooled:?}");
    assert_eq!(
        sqlite3_count(&mnt.join("state/ledger.db"), "SELECT count(*) FROM deliveries"),
        0
    );
    assert!(!w.path("files").exists() || files_under(&w.path("files")).is_empty());
    assert!(
        !w.path("db.sqlite").exists()
            || sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM connectly_runs") == 0
    );

    drop(fs);
    let (second, _) = sync_with(&w, &state, &sinks, 0);
    assert_eq!(second["delivered_runs"], 1, "{second:#}");
    assert_eq!(std::fs::read(w.path("files").join(CSV_KEY)).unwrap(), csv);
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        ROWS as u64
    );
}

/// Fills the file system under `dir` to the last byte with a file named `filler`.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    path
}

#[test]
fn a_state_folder_with_no_room_left_even_for_the_ledger_stops_the_sync_with_exit_3() {
    let w = World::new();
    w.vendor
        .add_report(BUSINESS, "daily", "Report daily", "campaign.daily.v1")
        .unwrap();
    let mnt = w.path("mnt");
    let fs = Tmpfs::mount(&mnt, "4m");
    let state = ["--state-dir", "mnt/state"];
    let sinks = ["sqlite:db.sqlite", "file:files"];
    // A first sync creates the ledger (the report has no run yet); then the disk fills up.
    sync_with(&w, &state, &sinks, 0);
    let filler = fill(&mnt);
    let csv = w.publish_campaign(
        "daily",
        "run-1",
        ROWS,
        1,
        time::macros::datetime!(2025-04-30 12:00:00 UTC),
    );
    // Not even the ledger can be opened (its WAL needs room): the sync cannot run
    // (README: "`3` the sync could not run"), before anything is downloaded.
    let (out, run) = sync_with(&w, &state, &sinks, 3);
    let error = out["error"].as_str().unwrap();
    assert!(
        error.starts_with("ledger mnt/state/ledger.db: "),
        "the error names the ledger: {error}"
    );
    assert!(run.stderr().contains(error), "{run:?}");
    assert!(
        !w.path("files").exists() && !w.path("db.sqlite").exists(),
        "no sink was touched"
    );
    assert_eq!(w.vendor.downloads("daily", "run-1"), 0);

    // Room again: the next sync downloads and delivers the run everywhere.
    std::fs::remove_file(filler).unwrap();
    let (second, _) = sync_with(&w, &state, &sinks, 0);
    assert_eq!(second["delivered_runs"], 1, "{second:#}");
    assert_eq!(std::fs::read(w.path("files").join(CSV_KEY)).unwrap(), csv);
    assert_eq!(
        sqlite3_count(&w.path("db.sqlite"), "SELECT count(*) FROM campaign_rows"),
        ROWS as u64
    );
    assert_eq!(
        sqlite3_count(
            &mnt.join("state/ledger.db"),
            "SELECT count(*) FROM deliveries WHERE run_id = 'run-1' AND state = 'delivered'"
        ),
        2
    );
    drop(fs);
}
