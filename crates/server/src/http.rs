//! The HTTP side: the webhook endpoint, health, readiness and metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connectly_model::{BusinessId, ModelError, ReportType, RunResult, RunStatus, decode_webhook};
use connectly_orchestrator::Ledger;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::{Allowlist, WebhookSecret};
use crate::metrics::Metrics;

/// Largest webhook body accepted; the documented payload is well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long an authenticated request may take to send its body (a slow sender would
/// otherwise hold a connection and a task for as long as it likes).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that may carry the secret instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-connectly-webhook-token";

/// A refused request is logged at WARN at most once per reason in this interval; the
/// others at DEBUG, counted in the next WARN line (and all in the metrics), so that a
/// client hammering the endpoint cannot flood the log.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// When each refusal reason was last logged at WARN, and how many since were not.
#[derive(Default)]
pub(crate) struct RefusalLog(Mutex<HashMap<&'static str, (Instant, u64)>>);

impl RefusalLog {
    /// `Some(n)` when a refusal for `reason` is to be logged at WARN now, `n` being the
    /// refusals for it not logged at WARN since the last one; `None` otherwise.
    fn admit(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get_mut(reason) {
            Some((last, skipped)) if now.duration_since(*last) < REFUSAL_LOG_INTERVAL => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                *last = now;
                Some(std::mem::take(skipped))
            }
            None => {
                windows.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

/// What the handlers and the worker share.
pub(crate) struct App {
    pub(crate) business: BusinessId,
    pub(crate) types: Vec<ReportType>,
    pub(crate) secret: Option<WebhookSecret>,
    pub(crate) allowlist: Allowlist,
    /// The handlers' own ledger connection (the worker has another).
    pub(crate) ledger: Mutex<Ledger>,
    /// Allowlisted signed URLs of recorded events, by event id: kept in memory only.
    /// Locked across recording an event, so the worker never sees an event without the
    /// URL it arrived with.
    pub(crate) urls: tokio::sync::Mutex<HashMap<i64, RunResult>>,
    /// Wakes the worker when an event was recorded.
    pub(crate) notify: Notify,
    pub(crate) metrics: Arc<Metrics>,
    /// Per sink: the error of its latest delivery attempt, or `None` when it succeeded.
    pub(crate) sink_health: Mutex<BTreeMap<String, Option<String>>>,
    /// Rate limit of the WARN lines about refused requests.
    pub(crate) refusals: RefusalLog,
}

impl App {
    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn router(app: Arc<App>, webhook_path: &str) -> Router {
    let mut router = Router::new()
        .route(webhook_path, post(webhook_by_header))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if app.secret.is_some() {
        router = router.route(&format!("{webhook_path}/{{token}}"), post(webhook_by_path));
    }
    router.with_state(app)
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn reject(app: &App, status: StatusCode, reason: &'static str, message: &str) -> Response {
    app.metrics.inc(
        "connectly_webhooks_rejected_total",
        vec![("reason", reason.to_owned())],
        1,
    );
    match app.refusals.admit(reason, Instant::now()) {
        Some(0) => warn!(reason, "webhook refused: {message}"),
        Some(skipped) => warn!(
            reason,
            skipped, "webhook refused: {message} ({skipped} more refused for this reason since the last such line)"
        ),
        None => debug!(reason, "webhook refused: {message}"),
    }
    let mut response = reply(status, json!({ "error": message }));
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = header::HeaderValue::from_str("Bearer")
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// The token a request presents in a header: `Authorization: Bearer T` or
/// `X-Connectly-Webhook-Token: T`.
fn header_token(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(token) = headers.get(TOKEN_HEADER) {
        return Some(token.as_bytes());
    }
    let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = auth.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

async fn webhook_by_header(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    app.metrics.inc("connectly_webhooks_received_total", vec![], 1);
    if let Some(secret) = &app.secret {
        match header_token(&headers) {
            None => {
                return reject(
                    &app,
                    StatusCode::UNAUTHORIZED,
                    "missing_secret",
                    "the webhook secret is missing (send `Authorization: Bearer SECRET` or append /SECRET to the path)",
                );
            }
            Some(token) if !secret.matches(token) => {
                return reject(
                    &app,
                    StatusCode::FORBIDDEN,
                    "wrong_secret",
                    "the webhook secret is wrong",
                );
            }
            Some(_) => {}
        }
    }
    accept(app, headers, body).await
}

async fn webhook_by_path(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    app.metrics.inc("connectly_webhooks_received_total", vec![], 1);
    // The route exists only when a secret is configured.
    let Some(secret) = &app.secret else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !secret.matches(token.as_bytes()) {
        return reject(
            &app,
            StatusCode::FORBIDDEN,
            "wrong_secret",
            "the webhook secret is wrong",
        );
    }
    accept(app, headers, body).await
}

fn too_large(app: &App) -> Response {
    reject(
        app,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

fn ignored(app: &App, why: &'static str, message: String) -> Response {
    app.metrics.inc(
        "connectly_webhooks_accepted_total",
        vec![("result", "ignored".to_owned())],
        1,
    );
    info!(why, "webhook acknowledged and ignored: {message}");
    reply(StatusCode::OK, json!({ "status": "ignored", "reason": why }))
}

/// At most 64 characters of a vendor string, for a log line.
fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// An authenticated webhook: read (bounded), decode, check, record, acknowledge.
async fn accept(app: Arc<App>, headers: HeaderMap, body: Body) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large(&app);
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
    let Ok(read) = read else {
        return reject(
            &app,
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            &format!("the body did not arrive within {BODY_TIMEOUT:?}"),
        );
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            let inner = e.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return too_large(&app);
            }
            return reject(&app, StatusCode::BAD_REQUEST, "malformed", "the body could not be read");
        }
    };
    let event = match decode_webhook(&bytes) {
        Ok(event) => event,
        Err(e) => {
            // Never the decoder's message: it may quote the body.
            let at = match &e {
                ModelError::Decode { source, .. } => {
                    format!(" (at line {}, column {})", source.line(), source.column())
                }
                _ => String::new(),
            };
            return reject(
                &app,
                StatusCode::BAD_REQUEST,
                "malformed",
                &format!("not a valid webhook payload{at}"),
            );
        }
    };
    if event.topic != "report" {
        return ignored(&app, "unknown_topic", format!("topic {}", excerpt(&event.topic)));
    }
    let Some(mut report) = event.report else {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "malformed",
            "a `report` webhook without a report",
        );
    };
    let Some(run) = report.last_run.as_mut() else {
        return ignored(&app, "no_run", format!("report {} names no run", report.id));
    };
    if run.status != RunStatus::Completed {
        return ignored(
            &app,
            "run_not_completed",
            format!(
                "run {} of report {} is {}",
                run.id,
                report.id,
                excerpt(run.status.as_str())
            ),
        );
    }
    if !app.types.is_empty() && !app.types.contains(&report.report_type) {
        return ignored(
            &app,
            "report_type_not_synced",
            format!(
                "report type {} is not among --type",
                excerpt(report.report_type.as_str())
            ),
        );
    }
    // Only an allowlisted URL is kept; any other is dropped, so the worker asks the API.
    let mut url = run.result.take().unwrap_or_default();
    if let Some(signed) = &url.url
        && let Err(refusal) = app.allowlist.check(signed)
    {
        app.metrics.inc(
            "connectly_webhook_urls_refused_total",
            vec![("reason", refusal.as_str().to_owned())],
            1,
        );
        warn!(
            run = %run.id, report = %report.id, url = %excerpt(signed.redacted()), reason = refusal.as_str(),
            "download URL refused by the allowlist; the run will be fetched through the Reports API"
        );
        url.url = None;
    }
    run.result = Some(RunResult {
        url: None,
        expires_at: None,
        created_at: url.created_at,
    });
    let (run_id, report_id) = (run.id.clone(), report.id.clone());

    let mut urls = app.urls.lock().await;
    let recorded = {
        let app = Arc::clone(&app);
        tokio::task::spawn_blocking(move || {
            app.ledger()
                .record_event(&app.business, &report, OffsetDateTime::now_utc())
        })
        .await
    };
    let recorded = match recorded {
        Ok(Ok(recorded)) => recorded,
        Ok(Err(e)) => {
            warn!("recording a webhook event failed: {e}");
            return reject(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the event could not be recorded; retry later",
            );
        }
        Err(_) => {
            return reject(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the event could not be recorded; retry later",
            );
        }
    };
    if !recorded.new {
        drop(urls);
        app.metrics.inc(
            "connectly_webhooks_accepted_total",
            vec![("result", "duplicate".to_owned())],
            1,
        );
        info!(run = %run_id, report = %report_id, event = recorded.id, "duplicate webhook acknowledged and ignored");
        return reply(StatusCode::OK, json!({ "status": "duplicate", "event": recorded.id }));
    }
    if url.url.is_some() {
        urls.insert(recorded.id, url);
    }
    drop(urls);
    app.notify.notify_one();
    app.metrics.inc(
        "connectly_webhooks_accepted_total",
        vec![("result", "recorded".to_owned())],
        1,
    );
    info!(run = %run_id, report = %report_id, event = recorded.id, "webhook recorded");
    reply(
        StatusCode::ACCEPTED,
        json!({ "status": "recorded", "event": recorded.id }),
    )
}

async fn healthz() -> Response {
    reply(StatusCode::OK, json!({ "status": "alive" }))
}

/// Ready when the ledger takes a write and no sink's latest delivery failed.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let probe = {
        let app = Arc::clone(&app);
        tokio::task::spawn_blocking(move || app.ledger().probe_writable(OffsetDateTime::now_utc())).await
    };
    if !matches!(probe, Ok(Ok(()))) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "not ready", "reason": "the ledger cannot be written" }),
        );
    }
    let failing: Vec<String> = app
        .sink_health
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, error)| error.is_some())
        .map(|(sink, _)| sink.clone())
        .collect();
    if !failing.is_empty() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not ready",
                "reason": format!("the latest delivery to {} failed; it is being retried", failing.join(", ")),
            }),
        );
    }
    reply(StatusCode::OK, json!({ "status": "ready" }))
}

/// Prometheus metrics; behind the webhook secret when one is configured.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(secret) = &app.secret {
        match header_token(&headers) {
            None => return (StatusCode::UNAUTHORIZED, "send the webhook secret as a bearer token\n").into_response(),
            Some(token) if !secret.matches(token) => return StatusCode::FORBIDDEN.into_response(),
            Some(_) => {}
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_reason_and_interval_with_the_count_of_the_others() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit("wrong_secret", t0), Some(0));
        assert_eq!(log.admit("wrong_secret", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit("wrong_secret", t0 + Duration::from_secs(59)), None);
        // Another reason has its own window.
        assert_eq!(log.admit("malformed", t0 + Duration::from_secs(2)), Some(0));
        // The next WARN line carries the two refusals it did not log.
        assert_eq!(log.admit("wrong_secret", t0 + REFUSAL_LOG_INTERVAL), Some(2));
        assert_eq!(log.admit("wrong_secret", t0 + REFUSAL_LOG_INTERVAL), None);
        assert_eq!(log.admit("wrong_secret", t0 + 2 * REFUSAL_LOG_INTERVAL), Some(1));
    }
}
