//! The commands besides `serve`: each reads the configuration, calls the libraries and
//! prints. Formatting of sync summaries lives in `output`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use connectly_model::{BusinessId, OffsetDateTime};
use connectly_orchestrator::{Ledger, PlannedAction, PlannedRun, SyncPlan, SyncReport, Syncer, sync_all};
use serde_json::{Value, json};

use crate::args::{CheckArgs, Cli, CompletionsArgs, InitArgs, ListArgs, ManArgs, StatusArgs, SyncArgs};
use crate::config::{DEFAULT_CONFIG, EXAMPLE, Resolved};
use crate::output::{self, human_bytes};
use crate::registry::SinkRegistry;
use crate::{EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, Prepared, build_sinks, client_for, load, syncers};

/// RFC 3339, or `-`.
fn time_text(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// `connectly-sync init`: writes the commented example, never over an existing file
/// unless `--force`.
pub(crate) fn init(config: Option<&Path>, args: &InitArgs) -> u8 {
    let path = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let written = options
        .open(path)
        .and_then(|mut file| file.write_all(EXAMPLE.as_bytes()).and_then(|()| file.sync_all()));
    match written {
        Ok(()) => {
            println!(
                "wrote {}: set your business id and sinks in it, export CONNECTLY_API_KEY, then run \
                 `connectly-sync check`",
                path.display()
            );
            EXIT_OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {} exists; keep it, or replace it with --force", path.display());
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            EXIT_FAILED
        }
    }
}

/// `connectly-sync completions SHELL`.
pub(crate) fn completions(args: &CompletionsArgs, registry: &SinkRegistry) -> u8 {
    let mut cmd = Cli::command_with(registry);
    // Generated into memory first: writing to a closed pipe (`| head`) is then an
    // error to report, not a panic inside the generator.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "connectly-sync", &mut script);
    match std::io::stdout().write_all(&script) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            eprintln!("error: writing the completion script: {e}");
            EXIT_FAILED
        }
    }
}

/// `connectly-sync man [--dir DIR]`.
pub(crate) fn man(args: &ManArgs, registry: &SinkRegistry) -> u8 {
    let cmd = Cli::command_with(registry);
    let result = match &args.dir {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let place = args
                .dir
                .as_deref()
                .map_or("stdout".to_owned(), |d| d.display().to_string());
            eprintln!("error: writing the man page to {place}: {e}");
            EXIT_FAILED
        }
    }
}

/// `connectly-sync sync [--dry-run]`.
pub(crate) async fn sync(config: Option<&Path>, args: SyncArgs, registry: &SinkRegistry) -> u8 {
    let resolved = match load(config, &args.common) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let sinks = match build_sinks(&resolved, registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Prepared { syncers, unusable } = match syncers(&resolved, &sinks) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.dry_run {
        return dry_run(&syncers, &unusable, args.json).await;
    }
    if let ([syncer], []) = (syncers.as_slice(), unusable.as_slice())
        && resolved.businesses.len() == 1
    {
        return match syncer.run().await {
            Ok(report) => {
                if args.json {
                    output::print_json(&report);
                } else {
                    output::print_human(&report);
                }
                if report.is_ok() { EXIT_OK } else { EXIT_INCOMPLETE }
            }
            Err(e) => {
                if args.json {
                    output::print_json_error(&e);
                }
                eprintln!("error: {e}");
                failed_exit(&e)
            }
        };
    }
    let results = match sync_all(&syncers, resolved.concurrency).await {
        Ok(results) => results,
        Err(e) => {
            if args.json {
                output::print_json_error(&e);
            }
            eprintln!("error: {e}");
            return failed_exit(&e);
        }
    };
    several_summaries(&syncers, &results, &unusable, args.json)
}

/// A sync that could not run: 2 when the options are unusable (the same sink twice),
/// else 3.
fn failed_exit(e: &connectly_orchestrator::SyncError) -> u8 {
    if matches!(e, connectly_orchestrator::SyncError::Options(_)) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// Prints one summary per business; the exit status covers them all.
fn several_summaries(
    syncers: &[Syncer],
    results: &[Result<SyncReport, connectly_orchestrator::SyncError>],
    unusable: &[(String, String)],
    json: bool,
) -> u8 {
    let failed = results.iter().filter(|r| r.is_err()).count();
    let incomplete_setup = !unusable.is_empty();
    let incomplete = results.iter().any(|r| r.as_ref().is_ok_and(|r| !r.is_ok()));
    if json {
        let businesses: Vec<Value> = syncers
            .iter()
            .zip(results)
            .map(|(syncer, result)| {
                let mut doc = match result {
                    Ok(report) => output::report_json(report),
                    Err(e) => output::error_json(e),
                };
                doc["business_id"] = json!(syncer.business_id().as_str());
                doc
            })
            .chain(unusable.iter().map(|(id, e)| unusable_json(id, e)))
            .collect();
        let ok = failed == 0 && !incomplete && !incomplete_setup;
        println!("{}", json!({"ok": ok, "businesses": businesses}));
    } else {
        for (syncer, result) in syncers.iter().zip(results) {
            println!("business {}:", syncer.business_id());
            match result {
                Ok(report) => output::print_human(report),
                Err(e) => println!("    FAILED: {e}"),
            }
        }
        print_unusable(unusable);
    }
    for (syncer, result) in syncers.iter().zip(results) {
        if let Err(e) = result {
            eprintln!("error: business {}: {e}", syncer.business_id());
        }
    }
    if failed == results.len() {
        EXIT_FAILED
    } else if failed > 0 || incomplete || incomplete_setup {
        EXIT_INCOMPLETE
    } else {
        EXIT_OK
    }
}

/// A business that could not be set up, as JSON.
fn unusable_json(id: &str, error: &str) -> Value {
    json!({"business_id": id, "ok": false, "error": error})
}

fn print_unusable(unusable: &[(String, String)]) {
    for (id, error) in unusable {
        println!("business {id}:");
        println!("    FAILED: {error}");
    }
}

fn planned_json(run: &PlannedRun) -> Value {
    json!({
        "report_id": run.report_id.as_str(),
        "report_name": run.report_name,
        "report_type": run.report_type.as_str(),
        "run_id": run.run_id.as_ref().map(|r| r.as_str()),
        "status": run.status,
        "created_at": run.created_at.map(|t| time_text(Some(t))),
        "expires_at": run.expires_at.map(|t| time_text(Some(t))),
        "rows": run.rows,
        "bytes": run.bytes,
        "action": run.action.as_str(),
        "delivered_sinks": run.delivered_sinks,
        "pending_sinks": run.pending_sinks,
        "last_error": run.last_error,
    })
}

/// The plans of every business, in order; a business whose listing fails is reported
/// and the others go on.
async fn plans(syncers: &[Syncer]) -> Vec<Result<SyncPlan, connectly_orchestrator::SyncError>> {
    let mut out = Vec::new();
    for syncer in syncers {
        out.push(syncer.plan().await);
    }
    out
}

/// `sync --dry-run`: what a sync would do, changing nothing.
async fn dry_run(syncers: &[Syncer], unusable: &[(String, String)], json: bool) -> u8 {
    let plans = plans(syncers).await;
    if json {
        let businesses: Vec<Value> = syncers
            .iter()
            .zip(&plans)
            .map(|(syncer, plan)| match plan {
                Ok(plan) => json!({
                    "business_id": syncer.business_id().as_str(),
                    "ok": true,
                    "list_requests": plan.list_requests,
                    "would_deliver": plan.runs.iter().filter(|r| !r.pending_sinks.is_empty()).count(),
                    "runs": plan.runs.iter().map(planned_json).collect::<Vec<_>>(),
                }),
                Err(e) => json!({"business_id": syncer.business_id().as_str(), "ok": false, "error": e.to_string()}),
            })
            .chain(unusable.iter().map(|(id, e)| unusable_json(id, e)))
            .collect();
        let ok = plans.iter().all(Result::is_ok) && unusable.is_empty();
        println!("{}", json!({"dry_run": true, "ok": ok, "businesses": businesses}));
    } else {
        for (syncer, plan) in syncers.iter().zip(&plans) {
            if syncers.len() + unusable.len() > 1 {
                println!("business {}:", syncer.business_id());
            }
            match plan {
                Ok(plan) => print_plan(plan),
                Err(e) => println!("    FAILED: {e}"),
            }
        }
        print_unusable(unusable);
        println!("dry run: nothing was downloaded, delivered or written");
    }
    plan_exit(syncers, &plans, unusable)
}

/// 0 when every business could be listed; 3 when none could; 1 otherwise.
fn plan_exit(
    syncers: &[Syncer],
    plans: &[Result<SyncPlan, connectly_orchestrator::SyncError>],
    unusable: &[(String, String)],
) -> u8 {
    let failed = plans.iter().filter(|p| p.is_err()).count();
    for (syncer, plan) in syncers.iter().zip(plans) {
        if let Err(e) = plan {
            eprintln!("error: business {}: {e}", syncer.business_id());
        }
    }
    if failed == 0 && unusable.is_empty() {
        EXIT_OK
    } else if failed == plans.len() {
        EXIT_FAILED
    } else {
        EXIT_INCOMPLETE
    }
}

fn print_plan(plan: &SyncPlan) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &plan.runs {
        let id = run.run_id.as_ref().map_or("-", |r| r.as_str());
        let what = match run.action {
            PlannedAction::NoRun => "no run yet".to_owned(),
            PlannedAction::Skip => format!("{}: would skip", run.status.as_deref().unwrap_or("not completed")),
            PlannedAction::UpToDate => "up to date".to_owned(),
            PlannedAction::Fetch => format!("would download and deliver to {}", run.pending_sinks.join(", ")),
            PlannedAction::DeliverFromSpool => {
                format!("would deliver from the spool to {}", run.pending_sinks.join(", "))
            }
            PlannedAction::RetryFromSpool => format!(
                "no longer listed; would retry from the spool to {}",
                run.pending_sinks.join(", ")
            ),
        };
        println!(
            "{} \"{}\" ({}) run {id}: {what}",
            run.report_type, run.report_name, run.report_id
        );
        *counts.entry(run.action.as_str()).or_default() += 1;
    }
    let would = plan.runs.iter().filter(|r| !r.pending_sinks.is_empty()).count();
    println!(
        "{} reports: {would} would be delivered, {} up to date, {} not completed",
        plan.runs.len(),
        counts.get("up_to_date").copied().unwrap_or(0),
        counts.get("skip").copied().unwrap_or(0) + counts.get("no_run").copied().unwrap_or(0),
    );
}

/// `connectly-sync list`: each report's latest run and where it is delivered.
pub(crate) async fn list(config: Option<&Path>, args: &ListArgs, registry: &SinkRegistry) -> u8 {
    let resolved = match load(config, &args.common) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let sinks = match build_sinks(&resolved, registry) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Prepared { syncers, unusable } = match syncers(&resolved, &sinks) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let plans = plans(&syncers).await;
    if args.json {
        let businesses: Vec<Value> = syncers
            .iter()
            .zip(&plans)
            .map(|(syncer, plan)| match plan {
                Ok(plan) => json!({
                    "business_id": syncer.business_id().as_str(),
                    "ok": true,
                    "reports": plan.runs.iter().map(planned_json).collect::<Vec<_>>(),
                }),
                Err(e) => json!({"business_id": syncer.business_id().as_str(), "ok": false, "error": e.to_string()}),
            })
            .chain(unusable.iter().map(|(id, e)| unusable_json(id, e)))
            .collect();
        println!("{}", json!({"businesses": businesses}));
    } else {
        for (syncer, plan) in syncers.iter().zip(&plans) {
            if syncers.len() + unusable.len() > 1 {
                println!("business {}:", syncer.business_id());
            }
            if let Ok(plan) = plan {
                print_table(plan);
            }
        }
        print_unusable(&unusable);
    }
    plan_exit(&syncers, &plans, &unusable)
}

fn print_table(plan: &SyncPlan) {
    let header = [
        "TYPE",
        "REPORT",
        "RUN",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "ROWS",
        "DELIVERED TO",
    ];
    let rows: Vec<[String; 8]> = plan
        .runs
        .iter()
        .map(|run| {
            let delivered = if run.delivered_sinks.is_empty() {
                "-".to_owned()
            } else {
                run.delivered_sinks.join(", ")
            };
            let delivered = if run.pending_sinks.is_empty() {
                delivered
            } else {
                format!("{delivered} (pending: {})", run.pending_sinks.join(", "))
            };
            [
                run.report_type.to_string(),
                format!("{} ({})", run.report_name, run.report_id),
                run.run_id.as_ref().map_or("-".to_owned(), ToString::to_string),
                run.status.clone().unwrap_or_else(|| "-".to_owned()),
                time_text(run.created_at),
                time_text(run.expires_at),
                run.rows.map_or("-".to_owned(), |r| r.to_string()),
                delivered,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    if rows.is_empty() {
        println!("(no reports)");
    }
}

/// Whether a run's recorded error says it expired before it could be fetched.
fn expired(error: Option<&str>) -> bool {
    error.is_some_and(|e| e.contains("expired before it could be fetched"))
}

/// `connectly-sync status`: what the ledger knows; no API request, no key needed.
pub(crate) fn status(config: Option<&Path>, args: &StatusArgs) -> u8 {
    let resolved = match load(config, &args.common) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ledger = match Ledger::open_read_only(&resolved.state_dir) {
        Ok(Some(ledger)) => ledger,
        Ok(None) => {
            let path = resolved.state_dir.join("ledger.db");
            if args.json {
                println!("{}", json!({"ledger": path, "businesses": []}));
            } else {
                println!(
                    "no ledger at {}: nothing has been synced with this state folder yet",
                    path.display()
                );
            }
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    match status_doc(&ledger, &resolved, args.runs) {
        Ok(doc) => {
            if args.json {
                println!("{doc}");
            } else {
                print_status(&doc);
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

fn status_doc(
    ledger: &Ledger,
    resolved: &Resolved,
    per_report: usize,
) -> Result<Value, connectly_orchestrator::SyncError> {
    let businesses: Vec<BusinessId> = if resolved.businesses.is_empty() {
        ledger.businesses()?
    } else {
        resolved
            .businesses
            .iter()
            .map(|b| BusinessId::new(b.id.clone()))
            .collect()
    };
    let mut docs = Vec::new();
    for business in &businesses {
        let mut reports: Vec<(String, Vec<Value>)> = Vec::new();
        let mut report_meta: BTreeMap<String, Value> = BTreeMap::new();
        let mut failing = 0;
        for run in ledger.runs(business)? {
            let types = resolved
                .businesses
                .iter()
                .find(|b| b.id == business.as_str())
                .map(|b| b.types.clone())
                .unwrap_or_default();
            if !types.is_empty() && !types.iter().any(|t| t == run.report_type.as_str()) {
                continue;
            }
            let key = run.report_id.to_string();
            let index = match reports.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    reports.push((key.clone(), Vec::new()));
                    report_meta.insert(
                        key.clone(),
                        json!({"report_id": key, "report_name": run.report_name, "report_type": run.report_type.as_str()}),
                    );
                    reports.len() - 1
                }
            };
            if reports[index].1.len() >= per_report {
                continue;
            }
            let deliveries: Vec<Value> = ledger
                .deliveries(business, &run.report_id, &run.run_id)?
                .iter()
                .map(|d| {
                    json!({
                        "sink": d.sink,
                        "state": d.state,
                        "attempts": d.attempts,
                        "location": d.location,
                        "error": d.error,
                        "updated_at": time_text(Some(d.updated_at)),
                    })
                })
                .collect();
            let sink_failed = deliveries.iter().any(|d| d["state"] == "failed");
            let has_error = run.error.is_some() || sink_failed;
            if has_error && reports[index].1.is_empty() {
                failing += 1;
            }
            reports[index].1.push(json!({
                "run_id": run.run_id.as_str(),
                "status": run.status,
                "completed_at": run.completed_at.map(|t| time_text(Some(t))),
                "first_seen": time_text(Some(run.first_seen)),
                "rows": run.rows,
                "bytes": run.bytes,
                "in_spool": run.spool_path.is_some(),
                "error": run.error,
                "expired_before_fetch": expired(run.error.as_deref()),
                "deliveries": deliveries,
            }));
        }
        let pending_events = ledger.pending_events(business)?.len();
        docs.push(json!({
            "business_id": business.as_str(),
            "pending_webhook_events": pending_events,
            "reports_failing": failing,
            "reports": reports.into_iter().map(|(key, runs)| {
                let mut meta = report_meta.remove(&key).unwrap_or_else(|| json!({}));
                meta["runs"] = json!(runs);
                meta
            }).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"ledger": ledger.path(), "businesses": docs}))
}

fn print_status(doc: &Value) {
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    println!("ledger {}", text(&doc["ledger"]));
    let empty = Vec::new();
    for business in doc["businesses"].as_array().unwrap_or(&empty) {
        println!("business {}", text(&business["business_id"]));
        let reports = business["reports"].as_array().unwrap_or(&empty);
        if reports.is_empty() {
            println!("  no runs recorded");
        }
        for report in reports {
            println!(
                "  {} \"{}\" ({})",
                text(&report["report_type"]),
                text(&report["report_name"]),
                text(&report["report_id"])
            );
            for run in report["runs"].as_array().unwrap_or(&empty) {
                let mut line = format!("    run {} {}", text(&run["run_id"]), text(&run["status"]));
                if let Some(at) = run["completed_at"].as_str() {
                    line.push_str(&format!(" {at}"));
                }
                if let (Some(rows), Some(bytes)) = (run["rows"].as_u64(), run["bytes"].as_u64()) {
                    line.push_str(&format!(", {rows} rows, {}", human_bytes(bytes)));
                }
                if run["in_spool"] == true {
                    line.push_str(", in the spool");
                }
                println!("{line}");
                if let Some(error) = run["error"].as_str() {
                    let label = if run["expired_before_fetch"] == true {
                        "EXPIRED before it could be fetched"
                    } else {
                        "error"
                    };
                    println!("      {label}: {error}");
                }
                for d in run["deliveries"].as_array().unwrap_or(&empty) {
                    let attempts = d["attempts"].as_u64().unwrap_or(0);
                    let tries = if attempts == 1 { "attempt" } else { "attempts" };
                    match d["state"].as_str() {
                        Some("delivered") => println!(
                            "      {}: delivered {} ({attempts} {tries}) -> {}",
                            text(&d["sink"]),
                            text(&d["updated_at"]),
                            d["location"].as_str().unwrap_or("-")
                        ),
                        _ => println!(
                            "      {}: FAILED ({attempts} {tries}, last {}): {}",
                            text(&d["sink"]),
                            text(&d["updated_at"]),
                            d["error"].as_str().unwrap_or("-")
                        ),
                    }
                }
            }
        }
        let pending = business["pending_webhook_events"].as_u64().unwrap_or(0);
        if pending > 0 {
            println!("  {pending} webhook event(s) recorded and not yet processed");
        }
    }
}

/// The tally of `check`'s lines: how many ran and how many failed.
struct Checks {
    failed: usize,
    total: usize,
}

impl Checks {
    fn line(&mut self, what: &str, result: Result<String, String>) {
        self.total += 1;
        match result {
            Ok(detail) => println!("ok    {what}: {detail}"),
            Err(cause) => {
                self.failed += 1;
                println!("FAIL  {what}: {cause}");
            }
        }
    }
}

/// The nearest folder of `path` (itself included) that exists.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut at = Some(path);
    while let Some(p) = at {
        let p = if p.as_os_str().is_empty() { Path::new(".") } else { p };
        if p.is_dir() {
            return Some(p.to_path_buf());
        }
        at = p.parent();
    }
    None
}

/// Whether the state folder (or, before the first sync, the folder it would be
/// created in) can be written: a temporary file created and removed.
fn check_state_dir(state: &Path) -> Result<String, String> {
    let Some(dir) = nearest_existing(state) else {
        return Err("no existing parent folder".to_owned());
    };
    let probe = dir.join(format!(".connectly-sync-check-{}", std::process::id()));
    std::fs::write(&probe, b"probe")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    if dir == state {
        Ok("writable".to_owned())
    } else {
        Ok(format!("not created yet; {} is writable", dir.display()))
    }
}

/// `connectly-sync check`.
pub(crate) async fn check(config: Option<&Path>, args: &CheckArgs, registry: &SinkRegistry) -> u8 {
    let resolved = match load(config, &args.common) {
        Ok(r) => r,
        Err(code) => {
            println!("FAIL  configuration: see the error above");
            return code;
        }
    };
    if let Err(e) = resolved.require_businesses() {
        println!("FAIL  configuration: {e}");
        return EXIT_USAGE;
    }
    let mut checks = Checks { failed: 0, total: 0 };
    let source = resolved.file.as_ref().map_or_else(
        || "no config file; flags and environment".to_owned(),
        |p| p.display().to_string(),
    );
    checks.line(
        "configuration",
        Ok(format!(
            "{source}: {} business(es), {} sink(s), state folder {}",
            resolved.businesses.len(),
            resolved.sinks.len(),
            resolved.state_dir.display()
        )),
    );
    let mut clients = Vec::new();
    for business in &resolved.businesses {
        let result = business
            .key
            .read()
            .map(|_| format!("API key from {}", business.key.describe()));
        let ok = result.is_ok();
        checks.line(&format!("business {}", business.label()), result);
        if ok {
            match client_for(business) {
                Ok(client) => clients.push((business, client)),
                Err(e) => checks.line(&format!("business {}", business.label()), Err(e)),
            }
        }
    }
    let mut sinks = Vec::new();
    for uri in &resolved.sinks {
        match registry.build(uri) {
            Ok(sink) => {
                checks.line(&format!("sink {uri}"), Ok("URI understood".to_owned()));
                sinks.push(sink);
            }
            Err(e) => checks.line(&format!("sink {uri}"), Err(e)),
        }
    }
    checks.line(
        &format!("state folder {}", resolved.state_dir.display()),
        check_state_dir(&resolved.state_dir),
    );
    if !args.offline {
        for (business, client) in &clients {
            let id = BusinessId::new(business.id.clone());
            let result = client
                .list_reports(&id, None)
                .await
                .map(|reports| {
                    format!(
                        "API key accepted by {} ({} reports listed)",
                        business.base_url,
                        reports.len()
                    )
                })
                .map_err(|e| e.to_string());
            checks.line(&format!("business {} API", business.label()), result);
        }
        for sink in &sinks {
            let result = sink.probe().await.map_err(|e| e.to_string());
            checks.line(&format!("sink {} probe", sink.name()), result);
        }
    }
    if checks.failed == 0 {
        println!("all {} checks passed", checks.total);
        EXIT_OK
    } else {
        println!("{} of {} checks failed", checks.failed, checks.total);
        EXIT_INCOMPLETE
    }
}
