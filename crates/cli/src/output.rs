use connectly_orchestrator::{ReportOutcome, RunAction, SinkOutcome, SyncError, SyncReport};
use serde_json::{Value, json};

pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn status_line(r: &ReportOutcome) -> String {
    let run = r.run_id.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    let size = match (r.rows, r.bytes) {
        (Some(rows), Some(bytes)) => format!(", {rows} rows, {}", human_bytes(bytes)),
        _ => String::new(),
    };
    let what = match &r.action {
        RunAction::NoRun => "no run yet".to_owned(),
        RunAction::Skipped { status } => format!("{status}: skipped, not delivered"),
        RunAction::UpToDate => "up to date".to_owned(),
        RunAction::Delivered if r.is_ok() => "delivered".to_owned(),
        RunAction::Delivered => "INCOMPLETE".to_owned(),
        RunAction::Failed { .. } => "FAILED".to_owned(),
    };
    let spool = if r.from_spool_only {
        " (no longer listed; retried from the spool)"
    } else {
        ""
    };
    format!(
        "{} \"{}\" ({}) run {run}: {what}{size}{spool}",
        r.report_type, r.report_name, r.report_id
    )
}

/// Prints the human summary on stdout.
pub(crate) fn print_human(report: &SyncReport) {
    let (mut delivered, mut up_to_date, mut skipped, mut failed) = (0, 0, 0, 0);
    for r in &report.reports {
        println!("{}", status_line(r));
        if let RunAction::Failed { error } = &r.action {
            println!("    error: {error}");
        }
        for s in &r.sinks {
            match s {
                SinkOutcome::Delivered {
                    sink,
                    location,
                    already_present,
                } => {
                    let note = if *already_present { " (already there)" } else { "" };
                    println!("    {sink}: delivered{note} -> {location}");
                }
                SinkOutcome::AlreadyDelivered { sink } if matches!(r.action, RunAction::Delivered) => {
                    println!("    {sink}: delivered earlier");
                }
                SinkOutcome::AlreadyDelivered { .. } => {}
                SinkOutcome::Failed { sink, error, retriable } => {
                    let kind = if *retriable {
                        "failed (temporary, retried next sync)"
                    } else {
                        "FAILED"
                    };
                    println!("    {sink}: {kind}: {error}");
                }
            }
        }
        match &r.action {
            _ if !r.is_ok() => failed += 1,
            RunAction::Delivered => delivered += 1,
            RunAction::UpToDate => up_to_date += 1,
            RunAction::Skipped { .. } | RunAction::NoRun => skipped += 1,
            RunAction::Failed { .. } => failed += 1,
        }
    }
    println!(
        "{} reports: {delivered} delivered, {up_to_date} up to date, {skipped} not completed, {failed} failed",
        report.reports.len()
    );
}

fn action_name(action: &RunAction) -> &'static str {
    match action {
        RunAction::NoRun => "no_run",
        RunAction::Skipped { .. } => "skipped",
        RunAction::UpToDate => "up_to_date",
        RunAction::Delivered => "delivered",
        RunAction::Failed { .. } => "failed",
    }
}

fn sink_json(s: &SinkOutcome) -> Value {
    match s {
        SinkOutcome::Delivered {
            sink,
            location,
            already_present,
        } => json!({"sink": sink, "outcome": "delivered", "location": location, "already_present": already_present}),
        SinkOutcome::AlreadyDelivered { sink } => json!({"sink": sink, "outcome": "already_delivered"}),
        SinkOutcome::Failed { sink, error, retriable } => {
            json!({"sink": sink, "outcome": "failed", "error": error, "retriable": retriable})
        }
    }
}

/// Prints the summary as one JSON document on stdout.
pub(crate) fn print_json(report: &SyncReport) {
    println!("{}", report_json(report));
}

/// The summary as one JSON document.
pub(crate) fn report_json(report: &SyncReport) -> Value {
    let reports: Vec<Value> = report
        .reports
        .iter()
        .map(|r| {
            json!({
                "report_id": r.report_id.as_str(),
                "report_name": r.report_name,
                "report_type": r.report_type.as_str(),
                "run_id": r.run_id.as_ref().map(|id| id.as_str()),
                "status": r.status,
                "action": action_name(&r.action),
                "ok": r.is_ok(),
                "error": match &r.action { RunAction::Failed { error } => Some(error), _ => None },
                "rows": r.rows,
                "bytes": r.bytes,
                "from_spool_only": r.from_spool_only,
                "sinks": r.sinks.iter().map(sink_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "ok": report.is_ok(),
        "list_requests": report.list_requests,
        "delivered_runs": report.delivered_runs(),
        "reports": reports,
    })
}

/// Prints a sync that could not run as JSON on stdout.
pub(crate) fn print_json_error(error: &SyncError) {
    println!("{}", error_json(error));
}

/// A sync that could not run, as JSON.
pub(crate) fn error_json(error: &SyncError) -> Value {
    json!({"ok": false, "error": error.to_string(), "temporary": error.is_temporary(), "reports": []})
}
