//! Two `connectly-sync sync` processes at once, on one state folder or on two.

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use connectly_e2e::*;
use time::macros::datetime;

const SQLITE: &str = "sqlite:db.sqlite";
const FILES: &str = "file:files";

/// Starts `sync --json` into both sinks with `extra` arguments, in the background.
fn start(w: &World, extra: &[&str]) -> std::process::Child {
    let mut args = vec!["sync", "--json", "--sink", SQLITE, "--sink", FILES];
    args.extend(extra);
    w.command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connectly-sync starts")
}

fn finish(child: std::process::Child) -> Run {
    let out: Output = child.wait_with_output().unwrap();
    Run(out)
}

/// Downloads of `report` trickle (about 0.5 s each) for the next `times` requests.
fn slow(w: &World, report: &str, csv: &[u8], times: usize) {
    for _ in 0..times {
        w.vendor
            .inject_download(
                report,
                Fault::Slow {
                    chunk: csv.len() / 10 + 1,
                    delay: Duration::from_millis(50),
                },
            )
            .unwrap();
    }
}

/// `(report id, run id, csv, campaign?)` and the file it lands as.
struct Landed {
    run_id: String,
    csv: Vec<u8>,
    campaign: bool,
    file: String,
}

/// Every run exactly once in each sink, byte for byte and row for row.
fn assert_each_run_once(w: &World, runs: &[Landed]) {
    let db = w.path("db.sqlite");
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM connectly_runs"),
        runs.len() as u64
    );
    let mut keys = HashSet::new();
    let mut campaign_rows = 0;
    for run in runs {
        let rows = csv_records(&run.csv);
        let table = sqlite3(
            &db,
            &format!(
                "SELECT table_name, seq FROM connectly_runs WHERE run_id = '{}'",
                run.run_id
            ),
        );
        assert_eq!(table.len(), 1, "run {} in connectly_runs: {table:?}", run.run_id);
        if run.campaign {
            assert_eq!(
                sqlite3_count(
                    &db,
                    &format!("SELECT count(*) FROM campaign_rows WHERE run_id = '{}'", run.run_id)
                ),
                rows.len() as u64,
                "rows of run {}",
                run.run_id
            );
            campaign_rows += rows.len() as u64;
            keys.extend(rows.iter().map(|r| (r[3].clone(), r[0].clone())));
        } else {
            let (name, seq) = table[0].split_once('|').unwrap();
            assert_eq!(
                sqlite3_count(&db, &format!("SELECT count(*) FROM \"{name}\" WHERE _run_seq = {seq}")),
                rows.len() as u64,
                "rows of run {}",
                run.run_id
            );
        }
        assert!(
            std::fs::read(w.path("files").join(&run.file)).unwrap() == run.csv,
            "{} differs from the vendor's CSV",
            run.file
        );
    }
    assert_eq!(sqlite3_count(&db, "SELECT count(*) FROM campaign_rows"), campaign_rows);
    assert_eq!(
        sqlite3_count(&db, "SELECT count(*) FROM campaign_latest"),
        keys.len() as u64
    );
    let mut want: Vec<String> = runs
        .iter()
        .flat_map(|r| [r.file.clone(), r.file.replace(".csv", ".manifest.json")])
        .collect();
    want.sort();
    assert_eq!(files_under(&w.path("files")), want, "files (temporary ones included)");
}

/// The ledger of `state` says every run is delivered to both sinks.
fn assert_ledger_delivered(w: &World, state: &str, runs: &[Landed]) {
    let ledger = w.path(&format!("{state}/ledger.db"));
    for run in runs {
        let mut sinks = sqlite3(
            &ledger,
            &format!(
                "SELECT sink FROM deliveries WHERE run_id = '{}' AND state = 'delivered'",
                run.run_id
            ),
        );
        sinks.sort();
        assert_eq!(sinks, [FILES, SQLITE], "{state}: run {}", run.run_id);
    }
}

/// The state-folder lock: while one sync runs, a second one on the same state folder
/// exits 3 without listing, downloading or delivering anything. Without the lock both
/// would run (two exit codes 0, two downloads of the run).
#[test]
fn two_syncs_on_one_state_folder_one_runs_and_the_other_exits_3() {
    let w = World::new();
    let csv = w.campaign("daily", "run-1", "campaign.daily.v1", 2000, 1);
    // The winner's download takes about 2 s: the loser starts well within it, even on
    // a busy machine.
    w.vendor
        .inject_download(
            "daily",
            Fault::Slow {
                chunk: csv.len() / 10 + 1,
                delay: Duration::from_millis(200),
            },
        )
        .unwrap();
    let a = start(&w, &[]);
    let b = start(&w, &[]);
    let (a, b) = (finish(a), finish(b));
    let (winner, loser) = if a.code() == 0 { (a, b) } else { (b, a) };
    assert_eq!(winner.code(), 0, "{winner:?}\n{loser:?}");
    assert_eq!(loser.code(), 3, "{loser:?}\n{winner:?}");
    assert!(
        loser.stderr().contains("another connectly-sync is already running"),
        "{loser:?}"
    );
    assert_eq!(winner.json()["delivered_runs"], 1, "{winner:?}");
    assert_eq!(w.vendor.list_requests(), 1, "the refused sync must not list");
    assert_eq!(w.vendor.downloads("daily", "run-1"), 1, "the run must be fetched once");
    let runs = [Landed {
        run_id: "run-1".to_owned(),
        csv,
        campaign: true,
        file: "business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type=campaign.daily.v1/run_date=2025-04-30/run-1.csv".to_owned(),
    }];
    assert_each_run_once(&w, &runs);
    assert_ledger_delivered(&w, ".connectly-sync", &runs);
}

/// Two state folders, one pair of sinks, both syncs at once and in step (the same slow
/// downloads, three rounds of four new runs): both succeed and the sinks alone keep
/// each run once. SQLite serialises the loads (`BEGIN IMMEDIATE`, busy timeout) and
/// re-checks inside the transaction that the run is not there yet (without that
/// re-check the second load fails on `connectly_runs`' unique key); the file sink
/// publishes by rename (a reader never sees a torn copy, checked byte for byte) and
/// leaves a live process's temporary file alone (removing it as a crash leftover made
/// the other process's rename fail with `No such file or directory`).
#[test]
fn two_syncs_with_their_own_state_into_the_same_sinks_both_succeed_and_keep_each_run_once() {
    let w = World::new();
    let reports = [
        ("daily", "campaign.daily.v1"),
        ("weekly", "campaign.weekly.v1"),
        ("monthly", "campaign.monthly.v1"),
        ("custom", "campaign.daily.custom"),
    ];
    for (id, report_type) in reports {
        w.vendor.add_report(BUSINESS, id, id, report_type).unwrap();
    }
    let mut runs = Vec::new();
    for round in 0..3u64 {
        let created_at = datetime!(2025-04-30 12:00:00 UTC) + time::Duration::days(round as i64);
        for (i, (id, report_type)) in reports.iter().enumerate() {
            let run_id = format!("{id}-{round}");
            let campaign = *id != "custom";
            let seed = round * 10 + i as u64;
            let csv = if campaign {
                campaign_csv_for(BUSINESS, 2000, seed)
            } else {
                custom_csv(500, seed)
            };
            w.vendor.publish_run(id, &run_id, csv.clone(), created_at).unwrap();
            // One slow download for each process: they stay in step.
            slow(&w, id, &csv, 2);
            runs.push(Landed {
                file: format!("business_id=2d503e81-e270-4467-a05f-21a900efbbc1/report_type={report_type}/run_date={}/{run_id}.csv", created_at.date()),
                run_id,
                csv,
                campaign,
            });
        }
        let a = start(&w, &["--state-dir", "state-a"]);
        let b = start(&w, &["--state-dir", "state-b"]);
        let (a, b) = (finish(a), finish(b));
        for (id, _) in reports {
            assert_eq!(w.vendor.downloads(id, &format!("{id}-{round}")), 2, "one download each");
        }
        assert_eq!(
            a.code(),
            0,
            "round {round}: both syncs must succeed\n--- A: {a:?}\n--- B: {b:?}"
        );
        assert_eq!(
            b.code(),
            0,
            "round {round}: both syncs must succeed\n--- A: {a:?}\n--- B: {b:?}"
        );
        assert_each_run_once(&w, &runs);
        assert_ledger_delivered(&w, "state-a", &runs);
        assert_ledger_delivered(&w, "state-b", &runs);
    }
}
