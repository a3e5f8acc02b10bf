//! Prometheus metrics, written in the text exposition format by hand (a few counters,
//! gauges and histograms do not justify a metrics framework), and the wrappers that
//! time downloads and deliveries around any source and sink.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use connectly_client::{ClientError, Download};
use connectly_model::{BusinessId, Report, ReportType, SignedUrl};
use connectly_orchestrator::{RunAction, SinkOutcome, Source, SyncReport};
use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError};
use time::OffsetDateTime;

/// Histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, kind, help. Rendered in this order.
const METRICS: &[(&str, Kind, &str)] = &[
    (
        "connectly_webhooks_received_total",
        Kind::Counter,
        "Webhook requests received.",
    ),
    (
        "connectly_webhooks_rejected_total",
        Kind::Counter,
        "Webhook requests refused, by reason (missing_secret, wrong_secret, too_large, body_timeout, malformed, ledger_unavailable).",
    ),
    (
        "connectly_webhooks_accepted_total",
        Kind::Counter,
        "Webhook requests acknowledged, by result (recorded, duplicate, ignored).",
    ),
    (
        "connectly_webhook_urls_refused_total",
        Kind::Counter,
        "Download URLs in webhooks refused by the allowlist, by reason; those runs are fetched through the Reports API.",
    ),
    (
        "connectly_events_pending",
        Kind::Gauge,
        "Recorded webhook events not processed yet.",
    ),
    (
        "connectly_runs_delivered_total",
        Kind::Counter,
        "Runs delivered, per report type and sink.",
    ),
    (
        "connectly_runs_failed_total",
        Kind::Counter,
        "Failed delivery attempts, per report type and sink.",
    ),
    (
        "connectly_runs_fetch_failed_total",
        Kind::Counter,
        "Runs that could not be downloaded or validated, per report type.",
    ),
    (
        "connectly_synced_bytes_total",
        Kind::Counter,
        "Bytes of runs delivered, per report type.",
    ),
    (
        "connectly_synced_rows_total",
        Kind::Counter,
        "Rows of runs delivered, per report type.",
    ),
    (
        "connectly_download_duration_seconds",
        Kind::Histogram,
        "Duration of run downloads.",
    ),
    (
        "connectly_delivery_duration_seconds",
        Kind::Histogram,
        "Duration of deliveries, per sink.",
    ),
    (
        "connectly_event_latency_seconds",
        Kind::Histogram,
        "From a webhook's acknowledgement to its run being in every sink.",
    ),
    (
        "connectly_last_success_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last sync that left a report's run in every sink, per report.",
    ),
    (
        "connectly_polls_total",
        Kind::Counter,
        "Polling syncs, by result (ok, incomplete, error).",
    ),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn series(name: &str, labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", parts.join(","))
    }
}

impl Metrics {
    /// Metrics with the unlabelled series at zero.
    pub fn new() -> Self {
        let metrics = Metrics::default();
        metrics.inc("connectly_webhooks_received_total", vec![], 0);
        metrics.set("connectly_events_pending", vec![], 0.0);
        metrics
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `by` to a counter.
    pub(crate) fn inc(&self, name: &'static str, labels: Labels, by: u64) {
        *self.lock().counters.entry((name, labels)).or_default() += by;
    }

    /// Sets a gauge.
    pub(crate) fn set(&self, name: &'static str, labels: Labels, value: f64) {
        self.lock().gauges.insert((name, labels), value);
    }

    /// Records an observation, in seconds.
    pub(crate) fn observe(&self, name: &'static str, labels: Labels, seconds: f64) {
        let mut inner = self.lock();
        let h = inner.histograms.entry((name, labels)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// Counts what a sync (poll or webhook batch) did.
    pub(crate) fn observe_sync(&self, report: &SyncReport, now: OffsetDateTime) {
        for outcome in &report.reports {
            let report_type = outcome.report_type.to_string();
            let mut delivered_somewhere = false;
            for sink in &outcome.sinks {
                match sink {
                    SinkOutcome::Delivered { sink, .. } => {
                        delivered_somewhere = true;
                        let labels = vec![("report_type", report_type.clone()), ("sink", sink.clone())];
                        self.inc("connectly_runs_delivered_total", labels, 1);
                    }
                    SinkOutcome::Failed { sink, .. } => {
                        let labels = vec![("report_type", report_type.clone()), ("sink", sink.clone())];
                        self.inc("connectly_runs_failed_total", labels, 1);
                    }
                    SinkOutcome::AlreadyDelivered { .. } => {}
                }
            }
            if delivered_somewhere {
                let labels = vec![("report_type", report_type.clone())];
                self.inc(
                    "connectly_synced_bytes_total",
                    labels.clone(),
                    outcome.bytes.unwrap_or(0),
                );
                self.inc("connectly_synced_rows_total", labels, outcome.rows.unwrap_or(0));
            }
            if let RunAction::Failed { .. } = outcome.action {
                self.inc(
                    "connectly_runs_fetch_failed_total",
                    vec![("report_type", report_type.clone())],
                    1,
                );
            }
            if outcome.is_ok() && matches!(outcome.action, RunAction::Delivered | RunAction::UpToDate) {
                let labels = vec![
                    ("report_id", outcome.report_id.to_string()),
                    ("report_type", report_type),
                ];
                self.set(
                    "connectly_last_success_timestamp_seconds",
                    labels,
                    now.unix_timestamp() as f64,
                );
            }
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let kind_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind_name}");
            match kind {
                Kind::Counter => {
                    for ((_, labels), v) in inner.counters.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{} {v}", series(name, labels, None));
                    }
                }
                Kind::Gauge => {
                    for ((_, labels), v) in inner.gauges.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{} {v}", series(name, labels, None));
                    }
                }
                Kind::Histogram => {
                    for ((_, labels), h) in inner.histograms.iter().filter(|((n, _), _)| n == name) {
                        for (bound, count) in BUCKETS.iter().zip(h.buckets) {
                            let le = Some(("le", bound.to_string()));
                            let _ = writeln!(out, "{} {count}", series(&format!("{name}_bucket"), labels, le));
                        }
                        let inf = Some(("le", "+Inf".to_owned()));
                        let _ = writeln!(out, "{} {}", series(&format!("{name}_bucket"), labels, inf), h.count);
                        let _ = writeln!(out, "{} {}", series(&format!("{name}_sum"), labels, None), h.sum);
                        let _ = writeln!(out, "{} {}", series(&format!("{name}_count"), labels, None), h.count);
                    }
                }
            }
        }
        out
    }
}

/// A [`Source`] that times downloads.
pub(crate) struct MeteredSource {
    pub(crate) inner: Arc<dyn Source>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl Source for MeteredSource {
    async fn list_reports(
        &self,
        business: &BusinessId,
        report_type: Option<ReportType>,
    ) -> Result<Vec<Report>, ClientError> {
        self.inner.list_reports(business, report_type).await
    }

    async fn download(&self, url: &SignedUrl, dest: &Path) -> Result<Download, ClientError> {
        let started = Instant::now();
        let result = self.inner.download(url, dest).await;
        self.metrics.observe(
            "connectly_download_duration_seconds",
            vec![],
            started.elapsed().as_secs_f64(),
        );
        result
    }
}

/// A [`Sink`] that times deliveries.
pub(crate) struct MeteredSink {
    pub(crate) inner: Arc<dyn Sink>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait]
impl Sink for MeteredSink {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        self.inner.holds(run, sha256).await
    }

    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let started = Instant::now();
        let result = self.inner.deliver(run, data).await;
        self.metrics.observe(
            "connectly_delivery_duration_seconds",
            vec![("sink", self.inner.name().to_owned())],
            started.elapsed().as_secs_f64(),
        );
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_exposition_has_help_type_escaped_labels_and_cumulative_buckets() {
        let m = Metrics::new();
        m.inc(
            "connectly_webhooks_rejected_total",
            vec![("reason", "wrong_secret".into())],
            2,
        );
        m.inc(
            "connectly_runs_delivered_total",
            vec![("report_type", "a\"b\\c".into()), ("sink", "file:x".into())],
            1,
        );
        m.observe("connectly_download_duration_seconds", vec![], 0.2);
        m.observe("connectly_download_duration_seconds", vec![], 3.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE connectly_webhooks_received_total counter\nconnectly_webhooks_received_total 0\n")
        );
        assert!(text.contains("connectly_webhooks_rejected_total{reason=\"wrong_secret\"} 2\n"));
        assert!(text.contains("connectly_runs_delivered_total{report_type=\"a\\\"b\\\\c\",sink=\"file:x\"} 1\n"));
        assert!(text.contains("connectly_download_duration_seconds_bucket{le=\"0.1\"} 0\n"));
        assert!(text.contains("connectly_download_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("connectly_download_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("connectly_download_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("connectly_download_duration_seconds_sum 3.2\n"));
        assert!(text.contains("connectly_download_duration_seconds_count 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
