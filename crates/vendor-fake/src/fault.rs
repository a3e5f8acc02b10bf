//! Fault injection: the ways the fake misbehaves on purpose, and how a response is
//! turned into its faulty variant.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How long a faulty body waits before it breaks off, so the bytes sent before the break
/// reach the socket rather than being discarded with the connection.
const FLUSH_PAUSE: Duration = Duration::from_millis(30);

/// The largest body [`apply`] reads to reshape it (fake responses are small).
const RESHAPE_LIMIT: usize = 256 * 1024 * 1024;

/// One misbehaviour, for one request.
///
/// Faults are queued per endpoint with [`FakeVendor::inject_list`](crate::FakeVendor::inject_list)
/// and [`FakeVendor::inject_download`](crate::FakeVendor::inject_download); each request
/// takes the next fault of its queue, so "fail twice, then succeed" is two faults. Once
/// its queue is empty an endpoint behaves normally again.
///
/// Some faults replace the answer (`TooManyRequests`, `Status`, `HtmlPage`, `JsonBody`,
/// `Respond`, `ExpireUrl`); the others (`ResetAfter`, `Truncate`, `Slow`) send the real
/// answer's status and headers, `Content-Length` included, and spoil only its body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `429 Too Many Requests`, with `Retry-After: <seconds>` when given.
    TooManyRequests {
        /// The `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// This status (meant for 5xx: 500, 502, 503, 504) with a short plain-text body, and
    /// `Retry-After: <seconds>` when given.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// The real answer, cut after `bytes` body bytes by aborting the connection (what a
    /// client sees of a connection reset). Its `Content-Length` still announces the whole body.
    ResetAfter {
        /// Body bytes sent before the abort.
        bytes: u64,
    },
    /// The real answer with its full `Content-Length`, but only `bytes` body bytes before
    /// the connection is closed cleanly: a short body.
    Truncate {
        /// Body bytes sent before the close.
        bytes: u64,
    },
    /// The real answer, complete, in chunks of `chunk` bytes with `delay` before every
    /// chunk but the first.
    Slow {
        /// Bytes per chunk (at least 1).
        chunk: usize,
        /// Pause before each further chunk.
        delay: Duration,
    },
    /// `200 OK` with a `text/html` maintenance page, as a CDN or captive portal sends.
    HtmlPage,
    /// `200 OK` with an `application/json` error document.
    JsonBody,
    /// Any answer: status, `Content-Type` and body.
    Respond {
        /// The HTTP status code.
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// Downloads: the signed URL used expires now. This request and every later one with
    /// the same URL get `403` with the S3-like XML `Request has expired`; URLs signed by
    /// later list calls are valid. On the list endpoint: that `403` XML answer, once.
    ExpireUrl,
}

impl Fault {
    /// `429` with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Fault::TooManyRequests {
            retry_after: Some(retry_after_secs),
        }
    }

    /// This status without `Retry-After`, e.g. `Fault::status(503)`.
    pub fn status(status: u16) -> Self {
        Fault::Status {
            status,
            retry_after: None,
        }
    }
}

/// The maintenance page of [`Fault::HtmlPage`].
pub const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>\n\
     <body><h1>We'll be back soon</h1><p>Our file service is down for scheduled maintenance.</p></body></html>\n";

/// The document of [`Fault::JsonBody`].
pub const JSON_BODY: &str =
    "{\"error\":{\"code\":\"service_unavailable\",\"message\":\"The report service is temporarily unavailable\"}}";

/// The XML body of a denied signed-URL request.
pub(crate) fn denied_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
}

/// `403` with the XML `Request has expired` body.
pub(crate) fn expired_response() -> Response {
    let body = denied_xml("AccessDenied", "Request has expired");
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Turns `response` into its faulty variant.
pub(crate) async fn apply(response: Response, fault: Fault) -> Response {
    match fault {
        Fault::TooManyRequests { retry_after } => status_answer(StatusCode::TOO_MANY_REQUESTS, retry_after),
        Fault::Status { status, retry_after } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            status_answer(status, retry_after)
        }
        Fault::HtmlPage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            HTML_PAGE,
        )
            .into_response(),
        Fault::JsonBody => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], JSON_BODY).into_response(),
        Fault::Respond {
            status,
            content_type,
            body,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Fault::ExpireUrl => expired_response(),
        Fault::ResetAfter { bytes } => {
            reshape(
                response,
                Shape::Break {
                    after: bytes,
                    abort: true,
                },
            )
            .await
        }
        Fault::Truncate { bytes } => {
            reshape(
                response,
                Shape::Break {
                    after: bytes,
                    abort: false,
                },
            )
            .await
        }
        Fault::Slow { chunk, delay } => {
            reshape(
                response,
                Shape::Slow {
                    chunk: chunk.max(1),
                    delay,
                },
            )
            .await
        }
    }
}

fn status_answer(status: StatusCode, retry_after: Option<u64>) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{reason} (injected fault)\n"),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[derive(Clone, Copy)]
enum Shape {
    /// Send `after` bytes, then abort (an error from the body) or end early.
    Break { after: u64, abort: bool },
    /// Send everything, `chunk` bytes at a time, pausing `delay` between chunks.
    Slow { chunk: usize, delay: Duration },
}

/// Re-sends `response` with the same status and headers and an explicit
/// `Content-Length` of its whole body, streaming the body in the given shape.
async fn reshape(response: Response, shape: Shape) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, RESHAPE_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
    let body = match shape {
        Shape::Break { after, abort } => {
            let cut = usize::try_from(after).unwrap_or(usize::MAX).min(bytes.len());
            let head = bytes.slice(..cut);
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let head = head.clone();
                async move {
                    match step {
                        0 if !head.is_empty() => Some((Ok(head), 1)),
                        0 | 1 => {
                            // Let the bytes sent so far reach the client before the break.
                            tokio::time::sleep(FLUSH_PAUSE).await;
                            if abort {
                                let reset = std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "connection reset (injected fault)",
                                );
                                Some((Err(reset), 2))
                            } else {
                                None
                            }
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(stream)
        }
        Shape::Slow { chunk, delay } => {
            let stream = futures_util::stream::unfold(0usize, move |offset| {
                let bytes: Bytes = bytes.clone();
                async move {
                    if offset >= bytes.len() {
                        return None;
                    }
                    if offset > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    let end = offset.saturating_add(chunk).min(bytes.len());
                    Some((Ok::<_, std::io::Error>(bytes.slice(offset..end)), end))
                }
            });
            Body::from_stream(stream)
        }
    };
    Response::from_parts(parts, body)
}
