//! Crash safety: the real binary is killed with SIGKILL (`Child::kill`) at many points of
//! a multi-report sync into SQLite and a folder. After every kill nothing half-done may
//! be visible, and a clean sync must converge to exactly what an undisturbed sync gives.
//!
//! Every iteration continues on the same sinks and state folder (convergence across
//! many crashes is the stronger test); the vendor publishes a new run of each of the five
//! reports first, so every killed sync has the whole work ahead of it.
//!
//! Kill points: a deterministic schedule (0 ms, then steps of 1/28 of a measured
//! undisturbed sync, until a sync ends before its kill) and points chosen by watching the
//! state: a spool `.part` file, a spooled `.csv`, the SQLite rollback journal, the file
//! sink's temporary files, a data file without its manifest, the manifest, the ledger's
//! delivery records.
//!
//! What each check protects (each fails if the protection is removed):
//! - a final file name holding anything but the vendor's exact bytes: temp file + rename
//!   in the file sink (writing in place leaves a torn CSV after a kill mid-copy);
//! - a manifest without its data file, or naming another SHA-256: manifest published
//!   last, as the commit marker;
//! - `integrity_check`, and `connectly_runs.rows` = rows in `campaign_rows`/the custom
//!   table = the CSV's rows, and `campaign_latest` = distinct keys of the loaded runs:
//!   one SQLite transaction per run, rollback journal with `synchronous=FULL` (a load
//!   in several transactions leaves a run half-loaded after a kill in its journal window);
//! - every `delivered` ledger record is held by its sink: ledger written after the sink
//!   confirmed (writing it before delivering fails after a kill in between);
//! - after the clean sync: every run exactly once in each sink, byte-identical files,
//!   exact row counts, ledger `delivered` for every (run, sink), nothing left in the spool
//!   or as temporary files: idempotent deliveries (`holds`, `already_present`), spool
//!   reuse, leftover clean-up, and a lock that dies with the process (a lock file that
//!   outlived the kill would make the clean sync exit 3).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use connectly_e2e::*;
use time::macros::datetime;

const SQLITE: &str = "sqlite:db.sqlite";
const FILES: &str = "file:files";
/// Rows of each campaign run, and of each custom run.
const ROWS: usize = 1500;
const CUSTOM_ROWS: usize = 500;
/// `(report id, report type)`: four campaign reports and one undocumented type (loaded
/// into a table of its own).
const REPORTS: [(&str, &str); 5] = [
    ("daily", "campaign.daily.v1"),
    ("weekly", "campaign.weekly.v1"),
    ("monthly", "campaign.monthly.v1"),
    ("adhoc", "campaign.adhoc.v1"),
    ("custom", "campaign.daily.custom"),
];
const CUSTOM: usize = 4;
/// Each download trickles in this many chunks with this pause between them.
const SLOW_CHUNKS: usize = 6;
const SLOW_DELAY: Duration = Duration::from_millis(25);

/// One run the vendor published.
struct Published {
    report: usize,
    run_id: String,
    csv: Vec<u8>,
    rows: u64,
    sha256: String,
    /// `(sendout_id, customer_external_id)` of each row (campaign runs only).
    keys: Vec<(String, String)>,
    /// The data file under the file sink's root.
    file: String,
}

impl Published {
    fn manifest(&self) -> String {
        self.file.replace(".csv", ".manifest.json")
    }
    fn is_campaign(&self) -> bool {
        self.report != CUSTOM
    }
}

struct Crash {
    w: World,
    runs: Vec<Published>,
    /// Index in `runs` of the first run of the current iteration.
    current: usize,
    /// Keys of the campaign runs of finished iterations.
    keys: HashSet<(String, String)>,
    /// Final files already compared byte for byte, by size and modification time.
    verified: HashMap<PathBuf, (u64, SystemTime)>,
    /// Where each kill landed: `(what, milliseconds after start)`.
    kills: Vec<(String, u128)>,
    /// Observed kill points whose state went by unseen (the sync finished first).
    missed: Vec<String>,
}

impl Crash {
    fn new() -> Crash {
        let w = World::new();
        for (id, report_type) in REPORTS {
            w.vendor
                .add_report(BUSINESS, id, &format!("Report {id}"), report_type)
                .unwrap();
        }
        Crash {
            w,
            runs: Vec::new(),
            current: 0,
            keys: HashSet::new(),
            verified: HashMap::new(),
            kills: Vec::new(),
            missed: Vec::new(),
        }
    }

    fn iteration(&self) -> usize {
        self.runs.len() / REPORTS.len()
    }

    /// The vendor publishes a new run of every report, and every download trickles.
    fn publish(&mut self) {
        let i = self.iteration();
        let created_at = datetime!(2025-01-01 06:00:00 UTC) + time::Duration::days(i as i64);
        self.current = self.runs.len();
        self.w.vendor.clear_faults();
        for (report, (id, report_type)) in REPORTS.iter().enumerate() {
            let run_id = format!("{id}-{i:03}");
            let seed = (i * REPORTS.len() + report) as u64;
            let csv = if report == CUSTOM {
                custom_csv(CUSTOM_ROWS, seed)
            } else {
                campaign_csv_for(BUSINESS, ROWS, seed)
            };
            self.w.vendor.publish_run(id, &run_id, csv.clone(), created_at).unwrap();
            self.w
                .vendor
                .inject_download(
                    id,
                    Fault::Slow {
                        chunk: csv.len() / SLOW_CHUNKS + 1,
                        delay: SLOW_DELAY,
                    },
                )
                .unwrap();
            let records = csv_records(&csv);
            let keys = if report == CUSTOM {
                Vec::new()
            } else {
                records.iter().map(|r| (r[3].clone(), r[0].clone())).collect()
            };
            self.runs.push(Published {
                report,
                file: format!("business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type={report_type}/run_date={}/{run_id}.csv", created_at.date()),
                run_id,
                rows: records.len() as u64,
                sha256: sha256(&csv),
                csv,
                keys,
            });
        }
    }

    fn now(&self, report: usize) -> &Published {
        &self.runs[self.current + report]
    }

    fn spawn(&self) -> Child {
        self.w
            .command(&["sync", "--sink", SQLITE, "--sink", FILES])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.w.path(&format!("killed-{}.log", self.iteration()))).unwrap())
            .spawn()
            .expect("connectly-sync starts")
    }

    /// Starts a sync and kills it `delay` after the start; `false` if it ended first.
    fn kill_after(&mut self, delay: Duration) -> bool {
        let started = Instant::now();
        let mut child = self.spawn();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "an undisturbed slow sync failed: {status}");
                return false;
            }
            let elapsed = started.elapsed();
            if elapsed >= delay {
                child.kill().unwrap();
                child.wait().unwrap();
                self.kills
                    .push((format!("after {} ms", delay.as_millis()), elapsed.as_millis()));
                return true;
            }
            std::thread::sleep((delay - elapsed).min(Duration::from_millis(2)));
        }
    }

    /// Starts a sync and kills it as soon as `seen` holds; `false` if it ended first.
    fn kill_when(&mut self, what: &str, seen: fn(&Crash) -> bool) -> bool {
        let started = Instant::now();
        let mut child = self.spawn();
        loop {
            if seen(self) {
                child.kill().unwrap();
                child.wait().unwrap();
                self.kills.push((what.to_owned(), started.elapsed().as_millis()));
                return true;
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "an undisturbed slow sync failed: {status}");
                return false;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    // ----- what the watcher looks at -----

    fn spool(&self, report: usize, suffix: &str) -> PathBuf {
        let run = self.now(report);
        self.w.path(&format!(
            ".connectly-sync/spool/{BUSINESS}/{}/{}.csv{suffix}",
            REPORTS[report].0, run.run_id
        ))
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.w.path("files").join(rel)
    }

    /// Whether the file sink has a temporary file for `final_name` of `report`'s run.
    fn file_temp(&self, report: usize, manifest: bool) -> bool {
        let run = self.now(report);
        let rel = if manifest { run.manifest() } else { run.file.clone() };
        let path = self.file(&rel);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
    }

    fn journal(&self) -> bool {
        self.w.path("db.sqlite-journal").exists()
    }

    /// Sinks the ledger records as delivered for `report`'s current run.
    fn ledger_delivered(&self, report: usize) -> usize {
        let path = self.w.path(".connectly-sync/ledger.db");
        if !path.exists() {
            return 0;
        }
        let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return 0;
        };
        conn.query_row(
            "SELECT count(*) FROM deliveries WHERE run_id = ?1 AND state = 'delivered'",
            [&self.now(report).run_id],
            |row| row.get::<_, i64>(0),
        )
        .map_or(0, |n| n as usize)
    }

    // ----- checks -----

    fn by_run_id(&self) -> HashMap<&str, &Published> {
        self.runs.iter().map(|r| (r.run_id.as_str(), r)).collect()
    }

    /// A final file equals the vendor's bytes (compared once per version of the file).
    fn assert_file_is(&mut self, rel: &str, run: usize) {
        let path = self.file(rel);
        let md = std::fs::metadata(&path).unwrap();
        let stamp = (md.len(), md.modified().unwrap());
        if self.verified.get(&path) == Some(&stamp) {
            return;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes == self.runs[run].csv,
            "{rel}: {} bytes under the final name differ from the vendor's {} bytes",
            bytes.len(),
            self.runs[run].csv.len()
        );
        self.verified.insert(path, stamp);
    }

    /// Nothing half-done is visible: what a reader of each sink, and the ledger, shows
    /// is consistent. Returns the number of runs each sink holds.
    fn assert_no_half_state(&mut self, when: &str, integrity: bool) -> (usize, usize) {
        // The folder: final names hold whole runs only; manifests commit.
        let by_file: HashMap<String, usize> = self
            .runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| [(r.file.clone(), i), (r.manifest(), i)])
            .collect();
        let listing = files_under(&self.w.path("files"));
        let mut committed = HashSet::new();
        for rel in &listing {
            let name = Path::new(rel).file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A temporary file of the killed delivery: hidden, never a final name.
                assert!(name.contains(".tmp-"), "{when}: unexpected file {rel}");
                continue;
            }
            let run = *by_file
                .get(rel)
                .unwrap_or_else(|| panic!("{when}: unexpected file {rel}"));
            if rel.ends_with(".manifest.json") {
                let m: serde_json::Value = serde_json::from_slice(&std::fs::read(self.file(rel)).unwrap())
                    .unwrap_or_else(|e| panic!("{when}: {rel} is not whole JSON: {e}"));
                let r = &self.runs[run];
                assert_eq!(m["sha256"], r.sha256.as_str(), "{when}: {rel}");
                assert_eq!(m["rows"], r.rows, "{when}: {rel}");
                assert!(
                    listing.contains(&r.file),
                    "{when}: {rel} commits a run whose data file is missing"
                );
                committed.insert(r.run_id.clone());
            } else {
                self.assert_file_is(&rel.clone(), run);
            }
        }

        // SQLite: a killed transaction is rolled back on open; what remains is whole.
        let db = self.w.path("db.sqlite");
        let mut loaded = HashSet::new();
        if db.exists() && integrity {
            assert_eq!(
                sqlite3_rw(&db, "PRAGMA integrity_check"),
                ["ok"],
                "{when}: database damaged"
            );
        }
        if db.exists() {
            let runs = self.by_run_id();
            let tables = sqlite3_rw(&db, "SELECT name FROM sqlite_master WHERE type = 'table'");
            let held = sqlite3_rw(&db, "SELECT run_id, rows, sha256, seq, table_name FROM connectly_runs");
            let mut campaign = sqlite3_rw(&db, "SELECT run_id, count(*) FROM campaign_rows GROUP BY run_id")
                .into_iter()
                .map(|l| {
                    let (run, n) = l.split_once('|').unwrap();
                    (run.to_owned(), n.parse::<u64>().unwrap())
                })
                .collect::<HashMap<_, _>>();
            let mut custom: HashMap<String, u64> = HashMap::new();
            let mut custom_table = None;
            let mut extra = HashSet::new();
            for line in &held {
                let f: Vec<&str> = line.split('|').collect();
                let run = runs
                    .get(f[0])
                    .unwrap_or_else(|| panic!("{when}: unknown run in connectly_runs: {line}"));
                assert_eq!(f[1], run.rows.to_string(), "{when}: {line}");
                assert_eq!(f[2], run.sha256, "{when}: {line}");
                if run.is_campaign() {
                    assert_eq!(f[4], "campaign_rows", "{when}: {line}");
                    assert_eq!(
                        campaign.remove(f[0]),
                        Some(run.rows),
                        "{when}: run {} is not whole in campaign_rows",
                        f[0]
                    );
                    for k in &run.keys {
                        if !self.keys.contains(k) {
                            extra.insert(k.clone());
                        }
                    }
                } else {
                    let table = custom_table.get_or_insert_with(|| {
                        assert!(tables.iter().any(|t| t == f[4]), "{when}: no table {}", f[4]);
                        let sql = format!("SELECT _run_seq, count(*) FROM \"{}\" GROUP BY _run_seq", f[4]);
                        custom = sqlite3_rw(&db, &sql)
                            .into_iter()
                            .map(|l| {
                                let (seq, n) = l.split_once('|').unwrap();
                                (seq.to_owned(), n.parse().unwrap())
                            })
                            .collect();
                        f[4].to_owned()
                    });
                    assert_eq!(table, f[4], "{when}: {line}");
                    assert_eq!(
                        custom.remove(f[3]),
                        Some(run.rows),
                        "{when}: run {} is not whole in {table}",
                        f[0]
                    );
                }
                loaded.insert(f[0].to_owned());
            }
            assert!(
                campaign.is_empty(),
                "{when}: rows of runs missing from connectly_runs: {campaign:?}"
            );
            assert!(custom.is_empty(), "{when}: custom rows of unknown runs: {custom:?}");
            // Keys of finished iterations (all loaded), plus those of this iteration's
            // loaded runs.
            if tables.iter().any(|t| t == "campaign_latest") {
                assert_eq!(
                    sqlite3_count_rw(&db, "SELECT count(*) FROM campaign_latest"),
                    (self.keys.len() + extra.len()) as u64,
                    "{when}: campaign_latest out of step with the loaded runs"
                );
            }
        }

        // The ledger never claims a delivery that did not happen.
        let ledger = self.w.path(".connectly-sync/ledger.db");
        if ledger.exists() {
            for line in sqlite3_rw(&ledger, "SELECT run_id, sink FROM deliveries WHERE state = 'delivered'") {
                let (run, sink) = line.split_once('|').unwrap();
                let held = match sink {
                    SQLITE => loaded.contains(run),
                    FILES => committed.contains(run),
                    other => panic!("{when}: unknown sink {other}"),
                };
                assert!(
                    held,
                    "{when}: the ledger says {run} is in {sink}, which does not hold it"
                );
            }
        }
        (loaded.len(), committed.len())
    }

    /// A clean sync (no faults), then exactly-once everywhere.
    fn clean_sync(&mut self, when: &str) {
        self.w.vendor.clear_faults();
        let result = self.w.sync(&[SQLITE, FILES], 0);
        assert_eq!(result["ok"], true, "{when}: {result:#}");
        let when = format!("{when}, after the clean sync");
        let (sqlite, files) = self.assert_no_half_state(&when, false);
        assert_eq!(sqlite, self.runs.len(), "{when}: runs in SQLite");
        assert_eq!(files, self.runs.len(), "{when}: runs in the folder");
        // Exactly the runs' files, no temporary file left over.
        let mut want: Vec<String> = self.runs.iter().flat_map(|r| [r.file.clone(), r.manifest()]).collect();
        want.sort();
        assert_eq!(files_under(&self.w.path("files")), want, "{when}");
        let ledger = self.w.path(".connectly-sync/ledger.db");
        let mut delivered = sqlite3_rw(
            &ledger,
            "SELECT run_id || ' ' || sink FROM deliveries WHERE state = 'delivered'",
        );
        delivered.sort();
        let mut want: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| [format!("{} {FILES}", r.run_id), format!("{} {SQLITE}", r.run_id)])
            .collect();
        want.sort();
        assert_eq!(delivered, want, "{when}: ledger");
        let spool = files_under(&self.w.path(".connectly-sync/spool"));
        assert!(
            spool.is_empty(),
            "{when}: left in the spool: {spool:?}; the ledger's spool files: {:?}\n{result:#} {:?}",
            sqlite3_rw(
                &ledger,
                "SELECT run_id, spool_path FROM runs WHERE spool_path IS NOT NULL"
            ),
            std::fs::read_to_string(self.w.path(&format!("killed-{}.log", self.iteration()))).unwrap_or_default()
        );
        for run in &self.runs[self.current..] {
            self.keys.extend(run.keys.iter().cloned());
        }
    }

    /// One iteration: new runs, a sync killed by `kill`, the checks, a clean sync.
    fn iterate(&mut self, kill: impl FnOnce(&mut Crash) -> bool) -> bool {
        self.publish();
        let killed = kill(self);
        let when = format!(
            "iteration {} ({})",
            self.iteration() - 1,
            if killed {
                &self.kills.last().unwrap().0
            } else {
                "not killed"
            }
        );
        self.assert_no_half_state(&when, true);
        self.clean_sync(&when);
        killed
    }
}

fn sqlite3_count_rw(db: &Path, sql: &str) -> u64 {
    let lines = sqlite3_rw(db, sql);
    lines
        .first()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: {lines:?}"))
}

/// A state-chosen kill point: what it is, and when the watcher sees it.
type Watch = (&'static str, fn(&Crash) -> bool);

/// How many syncs the watcher gets to see each state-chosen point.
const WATCH_ATTEMPTS: usize = 4;

/// State-chosen kill points: the kill lands inside each commit window.
const WATCHED: [Watch; 14] = [
    ("first download under way (.part)", |c| c.spool(0, ".part").exists()),
    ("third download half done (.part)", |c| {
        std::fs::metadata(c.spool(2, ".part")).is_ok_and(|m| m.len() as usize > c.now(2).csv.len() / 2)
    }),
    ("custom download under way (.part)", |c| {
        c.spool(CUSTOM, ".part").exists()
    }),
    ("first run spooled (.csv renamed)", |c| c.spool(0, "").exists()),
    ("SQLite transaction of the first run", |c| {
        c.spool(0, "").exists() && c.journal()
    }),
    ("SQLite transaction of the second run", |c| {
        c.spool(1, "").exists() && c.journal()
    }),
    ("SQLite transaction of the custom run", |c| {
        c.spool(CUSTOM, "").exists() && c.journal()
    }),
    ("file sink copying the first run (temp data file)", |c| {
        c.file_temp(0, false)
    }),
    ("file sink writing the first manifest (temp manifest)", |c| {
        c.file_temp(0, true)
    }),
    ("first data file published, manifest not yet", |c| {
        c.file(&c.now(0).file).exists() && !c.file(&c.now(0).manifest()).exists()
    }),
    ("first manifest published", |c| c.file(&c.now(0).manifest()).exists()),
    ("ledger records the first delivery", |c| c.ledger_delivered(0) >= 1),
    ("ledger records both deliveries of the second run", |c| {
        c.ledger_delivered(1) >= 2
    }),
    ("ledger records the first delivery of the last run", |c| {
        c.ledger_delivered(CUSTOM) >= 1
    }),
];

#[test]
fn sigkill_at_many_points_then_a_clean_sync_delivers_every_run_exactly_once() {
    let started = Instant::now();
    let mut c = Crash::new();

    // An undisturbed sync of the same size, to spread the schedule over.
    c.publish();
    let t = Instant::now();
    let mut child = c.spawn();
    assert!(child.wait().unwrap().success());
    let full = t.elapsed();
    c.assert_no_half_state("undisturbed", true);
    c.clean_sync("undisturbed");

    // The schedule: 0 ms, then steps of 1/28 of that sync, until one ends unkilled.
    let step = full / 28;
    let mut k = 0u32;
    while c.iterate(|c| c.kill_after(step * k)) {
        k += 1;
        assert!(
            k < 96,
            "the sync keeps getting killed: it never ends within {:?}",
            step * k
        );
    }
    let scheduled = c.kills.len();

    // The points chosen by watching the state. A narrow window can pass between two
    // looks of the watcher on a busy machine; a missed point gets another sync (each
    // one is a full iteration with its own checks) before it counts as missed.
    for (what, seen) in WATCHED {
        if !(0..WATCH_ATTEMPTS).any(|_| c.iterate(|c| c.kill_when(what, seen))) {
            c.missed.push(what.to_owned());
        }
    }
    let watched = c.kills.len() - scheduled;

    eprintln!(
        "SIGKILL test: undisturbed sync {full:?}, {scheduled} scheduled kills (step {step:?}), {watched} watched \
         kills, missed {:?}, {} runs in each sink, {:?} in all",
        c.missed,
        c.runs.len(),
        started.elapsed()
    );
    for (what, ms) in &c.kills {
        eprintln!("  killed {what} at {ms} ms");
    }
    assert!(c.kills.len() >= 30, "only {} kill points", c.kills.len());
    // The watched points that are wide enough to be seen every time.
    for must in [0, 1, 2, 3, 5, 7] {
        assert!(
            !c.missed.contains(&WATCHED[must].0.to_owned()),
            "never saw: {}",
            WATCHED[must].0
        );
    }
}
