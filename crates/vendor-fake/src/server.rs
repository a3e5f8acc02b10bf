//! The HTTP routes: the Reports API and the signed-URL file host.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;

use crate::fault::{self, Fault};
use crate::state::{DownloadOutcome, ListOutcome, RangeRequest, Shared};

/// How long in-flight requests may take to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The header carrying the API key.
const API_KEY_HEADER: &str = "x-api-key";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/businesses/{business_id}/reporting/reports", get(list_reports))
        .route("/files/{token}", get(download))
        .fallback(not_found)
        .with_state(shared)
}

/// Serves until `stop` turns true (or its sender is dropped), then lets in-flight
/// requests finish for at most [`SHUTDOWN_GRACE`].
pub(crate) async fn run(listener: tokio::net::TcpListener, router: Router, stop: watch::Receiver<bool>) {
    let mut graceful = stop.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|stopped| *stopped).await;
    });
    let mut deadline = stop;
    let deadline = async move {
        let _ = deadline.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = server => {}
        () = deadline => {}
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

async fn list_reports(
    State(shared): State<Arc<Shared>>,
    Path(business_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let api_key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    let type_filter = query.get("type").map(String::as_str);
    let (outcome, fault) = shared.lock().list(&shared.base_url, &business_id, api_key, type_filter);
    let response = match outcome {
        ListOutcome::Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        ListOutcome::Unauthorized => {
            json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid X-API-Key")
        }
        ListOutcome::UnknownBusiness => json_error(StatusCode::NOT_FOUND, "not_found", "business not found"),
        ListOutcome::Replaced => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    with_fault(response, fault).await
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let header_str = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let range = RangeRequest {
        range: header_str(header::RANGE),
        if_range: header_str(header::IF_RANGE),
    };
    let (outcome, fault) = shared.lock().download(
        &token,
        query.get("X-Signature").map(String::as_str),
        query.get("Expires").map(String::as_str),
        headers.contains_key(API_KEY_HEADER),
        range,
    );
    let response = match outcome {
        DownloadOutcome::Full {
            csv,
            etag,
            accept_ranges,
        } => {
            let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv")], csv).into_response();
            set_header(&mut response, header::ETAG, &etag);
            if accept_ranges {
                set_header(&mut response, header::ACCEPT_RANGES, "bytes");
            }
            response
        }
        DownloadOutcome::Partial {
            body,
            start,
            end,
            total,
            etag,
        } => {
            let mut response =
                (StatusCode::PARTIAL_CONTENT, [(header::CONTENT_TYPE, "text/csv")], body).into_response();
            set_header(&mut response, header::ETAG, &etag);
            set_header(&mut response, header::ACCEPT_RANGES, "bytes");
            set_header(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{total}"),
            );
            response
        }
        DownloadOutcome::Unsatisfiable { total } => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            set_header(&mut response, header::CONTENT_RANGE, &format!("bytes */{total}"));
            response
        }
        DownloadOutcome::Denied { code, message } => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/xml")],
            fault::denied_xml(code, message),
        )
            .into_response(),
        DownloadOutcome::Replaced => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    with_fault(response, fault).await
}

async fn with_fault(response: Response, fault: Option<Fault>) -> Response {
    match fault {
        Some(fault) => fault::apply(response, fault).await,
        None => response,
    }
}

fn set_header(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = header::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
}
