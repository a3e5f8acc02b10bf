use std::fmt;
use std::time::{Duration, Instant};

use connectly_model::{BusinessId, Report, ReportType, decode_list_response};
use reqwest::header::{ACCEPT, HeaderValue, LOCATION};
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode, Url};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::excerpt::{body_excerpt, retry_after, sanitize};
use crate::retry::{Attempt, RetryPolicy, with_retry};

/// The header that carries the API key.
const API_KEY_HEADER: &str = "x-api-key";
/// The largest list response accepted, to keep memory bounded.
const LIST_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Redirects the API client follows at most, and only within the base URL's origin.
const MAX_API_REDIRECTS: usize = 5;

/// Client for the Connectly Reports API and its signed download URLs.
///
/// Cheap to clone (the connection pools are shared). It holds two HTTP clients: one
/// for the API, which sends `X-API-Key` on each request (marked sensitive) and follows
/// redirects only within the base URL's origin; one for signed URLs, which never holds
/// the key. Neither sends a `Referer` on redirects. `Debug` does not show the key.
#[derive(Clone)]
pub struct ReportsClient {
    pub(crate) api: reqwest::Client,
    pub(crate) downloads: reqwest::Client,
    base: Url,
    key: HeaderValue,
    list_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for ReportsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportsClient")
            .field("base_url", &self.base.as_str())
            .field("api_key", &"<redacted>")
            .field("list_timeout", &self.list_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ReportsClient {
    /// Builds the client. Fails on a base URL that is not an `http(s)` URL without query
    /// string, an empty key or one that cannot go in an HTTP header, an unusable user
    /// agent, or when the TLS setup fails (e.g. no usable certificate store). It does
    /// not contact the server.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let base = parse_base_url(&config.base_url)?;
        let key = api_key_header(config.api_key.expose())?;
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| ClientError::Config {
            reason: format!("user agent {:?} is not a valid HTTP header value", config.user_agent),
        })?;
        let builder = || {
            reqwest::Client::builder()
                .user_agent(user_agent.clone())
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                .referer(false)
        };
        let api = builder()
            .redirect(same_origin_redirects())
            .build()
            .map_err(ClientError::build)?;
        let downloads = builder()
            .redirect(Policy::limited(10))
            .build()
            .map_err(ClientError::build)?;
        Ok(Self {
            api,
            downloads,
            base,
            key,
            list_timeout: config.list_timeout,
            retry: config.retry,
        })
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Lists the reports of `business` with the latest run of each, optionally only
    /// those of `report_type`: `GET {base}/v1/businesses/{business}/reporting/reports`.
    ///
    /// 401/403 give [`ClientError::Unauthorized`], 404 [`ClientError::NotFound`], 429
    /// [`ClientError::RateLimited`], 5xx [`ClientError::Server`], a body of the wrong
    /// shape [`ClientError::Decode`] naming the field. Temporary failures are retried
    /// under [`ClientConfig::retry`]; after more than one attempt the error is
    /// [`ClientError::Retried`] around the last one.
    pub async fn list_reports(
        &self,
        business: &BusinessId,
        report_type: Option<&ReportType>,
    ) -> Result<Vec<Report>, ClientError> {
        let mut call = ListCall {
            client: self,
            business,
            report_type,
        };
        let op = format!("listing reports for business {business}");
        with_retry(&self.retry, &op, &mut call).await
    }

    /// One list request.
    async fn list_once(
        &self,
        business: &BusinessId,
        report_type: Option<&ReportType>,
    ) -> Result<Vec<Report>, ClientError> {
        let op = || format!("listing reports for business {business}");
        let url = self.list_url(business, report_type, op)?;
        let started = Instant::now();
        let sent = self
            .api
            .get(url)
            .header(API_KEY_HEADER, self.key.clone())
            .header(ACCEPT, "application/json")
            .timeout(self.list_timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                let err = ClientError::network(op(), err);
                tracing::debug!(
                    business = %business,
                    report_type = report_type.map(ReportType::as_str),
                    elapsed_ms = elapsed_ms(started),
                    error = %err,
                    "listing reports failed"
                );
                return Err(err);
            }
        };
        let status = response.status();
        tracing::debug!(
            business = %business,
            report_type = report_type.map(ReportType::as_str),
            status = status.as_u16(),
            elapsed_ms = elapsed_ms(started),
            "Reports API answered"
        );
        if !status.is_success() {
            return Err(self.api_status_error(business, response, op()).await);
        }
        let body = read_capped(response, LIST_BODY_LIMIT, op).await?;
        let reports = decode_list_response(&body).map_err(|source| ClientError::Decode {
            business: business.clone(),
            source,
        })?;
        tracing::debug!(
            business = %business,
            reports = reports.len(),
            bytes = body.len(),
            elapsed_ms = elapsed_ms(started),
            "listed reports"
        );
        Ok(reports)
    }

    fn list_url(
        &self,
        business: &BusinessId,
        report_type: Option<&ReportType>,
        op: impl Fn() -> String,
    ) -> Result<Url, ClientError> {
        let id = business.as_str();
        if id.is_empty() || id == "." || id == ".." {
            return Err(ClientError::InvalidInput {
                op: op(),
                reason: format!("business id {id:?} cannot be used in a URL path"),
            });
        }
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| ClientError::InvalidInput {
                op: op(),
                reason: "base URL cannot take a path".to_owned(),
            })?;
            segments
                .pop_if_empty()
                .extend(["v1", "businesses", id, "reporting", "reports"]);
        }
        if let Some(report_type) = report_type {
            url.query_pairs_mut().append_pair("type", report_type.as_str());
        }
        Ok(url)
    }

    async fn api_status_error(&self, business: &BusinessId, response: Response, op: String) -> ClientError {
        let status = response.status();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized {
                business: business.clone(),
                status,
            },
            StatusCode::NOT_FOUND => ClientError::NotFound {
                business: business.clone(),
            },
            _ => {
                let key = self.key.to_str().unwrap_or_default();
                status_error(op, response, &[key]).await
            }
        }
    }
}

/// One attempt of [`ReportsClient::list_reports`].
struct ListCall<'a> {
    client: &'a ReportsClient,
    business: &'a BusinessId,
    report_type: Option<&'a ReportType>,
}

impl Attempt for ListCall<'_> {
    type Output = Vec<Report>;

    async fn attempt(&mut self) -> Result<Vec<Report>, ClientError> {
        self.client.list_once(self.business, self.report_type).await
    }
}

/// Maps a non-2xx answer that has no endpoint-specific meaning: 429, 5xx, the rest.
/// `secrets` are scrubbed from the body excerpt.
pub(crate) async fn status_error(op: String, response: Response, secrets: &[&str]) -> ClientError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ClientError::RateLimited { op, retry_after };
    }
    if status.is_redirection() {
        let target = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(['?', '#']).next().unwrap_or_default())
            .unwrap_or("nowhere");
        return ClientError::UnexpectedStatus {
            op,
            status,
            body_excerpt: sanitize(&format!("redirect to {target} not followed"), secrets),
        };
    }
    let body_excerpt = body_excerpt(response, secrets).await;
    if status.is_server_error() {
        ClientError::Server {
            op,
            status,
            retry_after,
            body_excerpt,
        }
    } else {
        ClientError::UnexpectedStatus {
            op,
            status,
            body_excerpt,
        }
    }
}

async fn read_capped(mut response: Response, limit: usize, op: impl Fn() -> String) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::TooLarge {
        op: op(),
        limit: limit as u64,
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|e| ClientError::network(op(), e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_base_url(base_url: &str) -> Result<Url, ClientError> {
    let bad = |why: String| ClientError::Config {
        reason: format!("base URL {base_url:?} {why}"),
    };
    let url = Url::parse(base_url).map_err(|e| bad(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL".to_owned()));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must have no query string or fragment".to_owned()));
    }
    Ok(url)
}

fn api_key_header(key: &str) -> Result<HeaderValue, ClientError> {
    if key.trim().is_empty() {
        return Err(ClientError::Config {
            reason: "the API key is empty".to_owned(),
        });
    }
    let mut value = HeaderValue::from_str(key).map_err(|_| ClientError::Config {
        reason: "the API key contains characters not allowed in an HTTP header \
                 (a stray newline or non-ASCII character?)"
            .to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Follows redirects only to the same scheme, host and port as the first request, so
/// the API key, set on the request, never goes to another origin. Other redirects are
/// returned as is and reported as an unexpected status.
fn same_origin_redirects() -> Policy {
    Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_API_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let same_origin = attempt.previous().first().is_some_and(|first| {
            let next = attempt.url();
            first.scheme() == next.scheme()
                && first.host_str() == next.host_str()
                && first.port_or_known_default() == next.port_or_known_default()
        });
        if same_origin { attempt.follow() } else { attempt.stop() }
    })
}

pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
