//! The worker: processes recorded events as soon as they arrive, retries failed ones
//! with backoff, and polls the Reports API as a safety net. One thing at a time: a poll
//! and a webhook batch never overlap, so a run arriving both ways is fetched once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use connectly_model::{ReportId, RunResult};
use connectly_orchestrator::{Ledger, LedgerEvent, RunAction, SinkOutcome, StateLock, SyncReport, Syncer};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::http::App;

/// Attempts of an event before it is given up (the poll still covers its run).
pub const MAX_EVENT_ATTEMPTS: u64 = 10;
/// Backoff of a failed event: 1 s, doubling, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long to wait before retrying when the ledger itself failed.
const LEDGER_RETRY: Duration = Duration::from_secs(1);

/// Delay before attempt `attempts + 1` of an event that failed `attempts` times.
pub(crate) fn backoff(attempts: u64) -> Duration {
    let exp = attempts.saturating_sub(1).min(20) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// How long finished webhook events stay in the ledger (for `status` and duplicate
/// detection) before the server deletes them.
const KEEP_FINISHED_EVENTS: time::Duration = time::Duration::days(30);

pub(crate) struct Worker {
    pub(crate) syncer: Syncer,
    pub(crate) lock: StateLock,
    pub(crate) ledger: Ledger,
    pub(crate) app: Arc<App>,
    pub(crate) poll_every: Option<Duration>,
}

impl Worker {
    /// Runs until `stop` turns true; the work in progress then finishes first.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        self.prune_events();
        // A poll at start-up catches up with what happened while the server was down.
        let mut next_poll = self.poll_every.map(|_| Instant::now());
        loop {
            if *stop.borrow() {
                break;
            }
            let mut wake = self.process_events().await;
            if *stop.borrow() {
                break;
            }
            if let (Some(at), Some(every)) = (next_poll, self.poll_every)
                && at <= Instant::now()
            {
                self.poll().await;
                self.prune_events();
                next_poll = Some(Instant::now() + every);
            }
            if let Some(at) = next_poll {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.app.notify.notified() => {}
                () = sleep => {}
                _ = stop.changed() => {}
            }
        }
        info!("worker stopped");
    }

    /// Processes the due pending events (one per report at a time); returns when the
    /// next one is due, if any is pending.
    async fn process_events(&self) -> Option<Instant> {
        let now = OffsetDateTime::now_utc();
        let (batch, results, next_due) = {
            let mut urls = self.app.urls.lock().await;
            let pending = match self.ledger.pending_events(&self.app.business) {
                Ok(p) => p,
                Err(e) => {
                    warn!("reading pending events: {e}");
                    return Some(Instant::now() + LEDGER_RETRY);
                }
            };
            self.app
                .metrics
                .set("connectly_events_pending", vec![], pending.len() as f64);
            let mut reports_taken: HashSet<ReportId> = HashSet::new();
            let mut batch: Vec<LedgerEvent> = Vec::new();
            let mut next_due: Option<Instant> = None;
            for event in pending {
                match event.next_attempt {
                    Some(at) if at > now => {
                        let wait = Duration::try_from(at - now).unwrap_or_default();
                        let at = Instant::now() + wait;
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                    }
                    _ if reports_taken.contains(&event.report_id) => {
                        // Another run of the same report is in this batch: next round.
                        next_due = Some(Instant::now());
                    }
                    _ => {
                        reports_taken.insert(event.report_id.clone());
                        batch.push(event);
                    }
                }
            }
            // A URL is tried once; later attempts use the spool or ask the API.
            let results: Vec<Option<RunResult>> = batch.iter().map(|e| urls.remove(&e.id)).collect();
            (batch, results, next_due)
        };
        if batch.is_empty() {
            return next_due;
        }
        let reports = batch
            .iter()
            .zip(results)
            .map(|(event, result)| {
                let mut report = event.report();
                if let (Some(run), Some(result)) = (report.last_run.as_mut(), result) {
                    run.result = Some(RunResult {
                        created_at: event.created_at.or(result.created_at),
                        ..result
                    });
                }
                report
            })
            .collect();
        info!(events = batch.len(), "processing webhook events");
        let outcome = self.syncer.sync_announced(&self.lock, reports).await;
        let now = OffsetDateTime::now_utc();
        let report = match outcome {
            Ok(report) => {
                self.observe(&report, now);
                Some(report)
            }
            Err(e) => {
                warn!("processing webhook events failed: {e}");
                None
            }
        };
        for event in &batch {
            self.settle(event, report.as_ref(), now);
        }
        // More may have arrived meanwhile, or be waiting behind a run of the same report:
        // look again at once (the next pass computes when the rest is due).
        Some(Instant::now())
    }

    /// Records what became of one event.
    fn settle(&self, event: &LedgerEvent, report: Option<&SyncReport>, now: OffsetDateTime) {
        let outcome = report.and_then(|r| {
            r.reports
                .iter()
                .find(|o| o.report_id == event.report_id && o.run_id.as_ref() == Some(&event.run_id))
        });
        let error = match outcome {
            None if report.is_some() => {
                // Filtered out (its report type is not synced by this configuration).
                self.finish(event, false, Some("not synced by this configuration"), now);
                return;
            }
            None => "the sync could not run".to_owned(),
            Some(o) if matches!(o.action, RunAction::Skipped { .. }) => {
                self.finish(event, false, Some("the run is not completed"), now);
                return;
            }
            Some(o) if o.is_ok() => {
                if o.sinks.iter().any(|s| matches!(s, SinkOutcome::Delivered { .. })) {
                    let latency = (now - event.received_at).as_seconds_f64().max(0.0);
                    self.app
                        .metrics
                        .observe("connectly_event_latency_seconds", vec![], latency);
                }
                self.finish(event, false, None, now);
                return;
            }
            Some(o) => match &o.action {
                RunAction::Failed { error } => error.clone(),
                _ => o
                    .sinks
                    .iter()
                    .filter_map(|s| match s {
                        SinkOutcome::Failed { sink, error, .. } => Some(format!("{sink}: {error}")),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        };
        let attempts = event.attempts + 1;
        if attempts >= MAX_EVENT_ATTEMPTS {
            warn!(event = event.id, run = %event.run_id, "giving up after {attempts} attempts: {error}");
            self.finish(event, true, Some(&error), now);
            return;
        }
        let delay = backoff(attempts);
        warn!(
            event = event.id, run = %event.run_id, attempt = attempts,
            "event not done, retrying in {delay:?}: {error}"
        );
        let at = now + delay;
        if let Err(e) = self.ledger.retry_event(event.id, &error, at) {
            warn!("rescheduling event {}: {e}", event.id);
        }
    }

    fn finish(&self, event: &LedgerEvent, failed: bool, note: Option<&str>, now: OffsetDateTime) {
        match self.ledger.finish_event(event.id, failed, note, now) {
            Ok(()) if !failed => info!(event = event.id, run = %event.run_id, "event done"),
            Ok(()) => {}
            Err(e) => warn!("finishing event {}: {e}", event.id),
        }
    }

    /// A regular sync, as `connectly-sync sync` does.
    async fn poll(&self) {
        info!("polling the Reports API");
        let now = OffsetDateTime::now_utc();
        let result = match self.syncer.run_locked(&self.lock).await {
            Ok(report) => {
                self.observe(&report, now);
                info!(
                    delivered = report.delivered_runs(),
                    ok = report.is_ok(),
                    "poll finished"
                );
                if report.is_ok() { "ok" } else { "incomplete" }
            }
            Err(e) => {
                warn!("poll failed: {e}");
                "error"
            }
        };
        self.app
            .metrics
            .inc("connectly_polls_total", vec![("result", result.to_owned())], 1);
    }

    /// Deletes events that finished more than [`KEEP_FINISHED_EVENTS`] ago (at start-up
    /// and after each poll), so the ledger's events table stays small.
    fn prune_events(&self) {
        let cutoff = OffsetDateTime::now_utc() - KEEP_FINISHED_EVENTS;
        match self.ledger.prune_events(cutoff) {
            Ok(0) => {}
            Ok(n) => info!(pruned = n, "deleted finished webhook events older than 30 days"),
            Err(e) => warn!("pruning finished webhook events: {e}"),
        }
    }

    /// Metrics and sink health from a sync's result.
    fn observe(&self, report: &SyncReport, now: OffsetDateTime) {
        self.app.metrics.observe_sync(report, now);
        let mut health = self.app.sink_health.lock().unwrap_or_else(|e| e.into_inner());
        for sink in report.reports.iter().flat_map(|r| &r.sinks) {
            match sink {
                SinkOutcome::Delivered { sink, .. } => {
                    health.insert(sink.clone(), None);
                }
                SinkOutcome::Failed { sink, error, .. } => {
                    health.insert(sink.clone(), Some(error.clone()));
                }
                SinkOutcome::AlreadyDelivered { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(u64::MAX), MAX_BACKOFF);
    }
}
