use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use connectly_model::SignedUrl;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_RANGE, RANGE};
use reqwest::{Response, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{ReportsClient, elapsed_ms, status_error};
use crate::error::ClientError;
use crate::excerpt::{body_excerpt, sanitize_to};
use crate::retry::{Attempt, with_retry};

/// A completed download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// How many bytes were written.
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

impl ReportsClient {
    /// Downloads a signed URL to `dest`, without the API key.
    ///
    /// The body is streamed (memory stays bounded) into `dest` with `.part` appended to
    /// its file name, in the same directory, hashed on the way; when the body is
    /// complete (its length matches any `Content-Length`) the file is synced and renamed
    /// to `dest`, replacing any file there. On any failure, and when the returned future
    /// is dropped early, the partial file is removed and `dest` is left untouched.
    /// Concurrent downloads to the same `dest` are not supported.
    ///
    /// Temporary failures are retried under [`ClientConfig::retry`](crate::ClientConfig::retry).
    /// A body that broke off is resumed with `Range: bytes=<received>-` (and `If-Range`
    /// with the first answer's strong `ETag`, if it had one) when the server answers `206`
    /// with a `Content-Range` that continues the bytes already on disk, whose hashing
    /// simply continues; otherwise the download restarts from zero.
    ///
    /// A 403 (or a 400 that names expiry) gives [`ClientError::UrlExpired`]: list the
    /// reports again for a fresh URL. A body that stays short gives
    /// [`ClientError::Truncated`]. A `200` that is not a report (an HTML page, a JSON or
    /// XML document, by `Content-Type` or first bytes) gives [`ClientError::NotAReport`].
    /// After several attempts the error is [`ClientError::Retried`] around the last one.
    /// Errors and logs show the URL without its query.
    pub async fn download(&self, url: &SignedUrl, dest: &Path) -> Result<Download, ClientError> {
        let shown = url.redacted();
        let op = || format!("downloading {shown}");
        let parsed = Url::parse(url.expose()).map_err(|e| ClientError::InvalidInput {
            op: op(),
            reason: format!("not a valid URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::InvalidInput {
                op: op(),
                reason: "only http and https URLs can be downloaded".to_owned(),
            });
        }
        let part = part_path(dest).ok_or_else(|| ClientError::InvalidInput {
            op: op(),
            reason: format!("destination {} has no file name", dest.display()),
        })?;
        // Parts of the query (the signature, credentials) never go into an error.
        let query = parsed.query().unwrap_or_default().to_owned();
        let mut secrets: Vec<String> = parsed.query_pairs().map(|(_, v)| v.into_owned()).collect();
        secrets.push(query);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();

        let started = Instant::now();
        let mut call = DownloadCall {
            http: &self.downloads,
            url: parsed,
            shown,
            secrets: &secrets,
            guard: PartFile::new(part.clone()),
            part,
            file: None,
            hasher: Sha256::new(),
            received: 0,
            total: None,
            validator: None,
            sniffing: false,
            can_resume: true,
            resumed: 0,
            restarted: 0,
        };
        with_retry(&self.retry, &op(), &mut call).await?;
        call.finish(dest).await?;

        let sha256 = hex::encode(call.hasher.finalize());
        tracing::debug!(
            url = shown,
            dest = %dest.display(),
            bytes = call.received,
            sha256 = %sha256,
            resumed = call.resumed,
            restarted = call.restarted,
            elapsed_ms = elapsed_ms(started),
            "downloaded"
        );
        Ok(Download {
            bytes: call.received,
            sha256,
        })
    }
}

/// How much of a body that is not a report is read for the error's excerpt.
const NOT_A_REPORT_READ: usize = 1024;
/// How many characters of it the error shows.
const NOT_A_REPORT_SHOW: usize = 100;

/// A download across its attempts: the partial file, the hash of its bytes and how far
/// it got survive from one attempt to the next.
struct DownloadCall<'a> {
    http: &'a reqwest::Client,
    url: Url,
    shown: &'a str,
    secrets: &'a [&'a str],
    part: PathBuf,
    guard: PartFile,
    file: Option<tokio::fs::File>,
    /// SHA-256 of the `received` bytes in the part file.
    hasher: Sha256,
    received: u64,
    /// The whole body's length, when the server said.
    total: Option<u64>,
    /// A strong `ETag` of the first answer, sent as `If-Range` when resuming.
    validator: Option<HeaderValue>,
    /// Whether the body's first non-blank byte is still to be checked.
    sniffing: bool,
    /// Cleared when the server answered a range request with a range we cannot use.
    can_resume: bool,
    resumed: u32,
    restarted: u32,
}

impl Attempt for DownloadCall<'_> {
    type Output = ();

    async fn attempt(&mut self) -> Result<(), ClientError> {
        if self.received > 0 && self.can_resume {
            let from = self.received;
            let answer = self.send(Some(from)).await?;
            let status = answer.status();
            if status == StatusCode::PARTIAL_CONTENT && self.continues(&answer, from) {
                self.resumed += 1;
                tracing::info!(url = self.shown, from, total = self.total, "resuming the download");
                return self.receive(answer).await;
            }
            if status == StatusCode::PARTIAL_CONTENT || status == StatusCode::RANGE_NOT_SATISFIABLE {
                tracing::info!(
                    url = self.shown,
                    status = status.as_u16(),
                    "the answer to the range request does not continue the download; restarting"
                );
                self.can_resume = false;
                let answer = self.send(None).await?;
                return self.start_over(answer).await;
            }
            // A 200 (the server ignored the range) or an error status.
            return self.start_over(answer).await;
        }
        let answer = self.send(None).await?;
        self.start_over(answer).await
    }
}

impl DownloadCall<'_> {
    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> ClientError + use<> {
        let path = self.part.clone();
        move |source| ClientError::Io { action, path, source }
    }

    fn truncated(&self, source: Option<reqwest::Error>) -> ClientError {
        ClientError::Truncated {
            url: self.shown.to_owned(),
            expected: self.total,
            received: self.received,
            source: source.map(reqwest::Error::without_url),
        }
    }

    /// Sends the GET, from byte `from` on when given.
    async fn send(&self, from: Option<u64>) -> Result<Response, ClientError> {
        let started = Instant::now();
        let mut request = self.http.get(self.url.clone());
        if let Some(from) = from {
            request = request.header(RANGE, format!("bytes={from}-"));
            if let Some(validator) = &self.validator {
                request = request.header(IF_RANGE, validator.clone());
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::network(format!("downloading {}", self.shown), e))?;
        tracing::debug!(
            url = self.shown,
            status = response.status().as_u16(),
            range_from = from,
            elapsed_ms = elapsed_ms(started),
            "download answered"
        );
        Ok(response)
    }

    /// Whether a `206` continues exactly where the part file ends.
    fn continues(&mut self, response: &Response, from: u64) -> bool {
        let Some((start, total)) = content_range(response.headers()) else {
            return false;
        };
        if start != from {
            return false;
        }
        let total = total.or_else(|| response.content_length().map(|len| from + len));
        match (self.total, total) {
            (Some(known), Some(now)) if known != now => false,
            (_, now) => {
                self.total = now.or(self.total);
                true
            }
        }
    }

    /// Takes an answer to a plain GET: refuses an error status or a body that is not a
    /// report, else writes the body from byte zero.
    async fn start_over(&mut self, response: Response) -> Result<(), ClientError> {
        let status = response.status();
        if !status.is_success() {
            return Err(download_status_error(self.shown, response, self.secrets).await);
        }
        if status == StatusCode::PARTIAL_CONTENT {
            return Err(ClientError::UnexpectedStatus {
                op: format!("downloading {}", self.shown),
                status,
                body_excerpt: "a partial answer to a request for the whole file".to_owned(),
            });
        }
        if let Some(what) = non_report_content_type(response.headers()) {
            return Err(self.not_a_report(what, Vec::new(), response).await);
        }
        if self.received > 0 || self.file.is_some() {
            self.restarted += 1;
            tracing::info!(url = self.shown, "restarting the download from the beginning");
        }
        // (Re)create the part file empty, and hash from the start. A write of the old
        // handle still in flight must land before the file is truncated, not after.
        if let Some(mut old) = self.file.take() {
            old.flush().await.map_err(self.io("writing"))?;
        }
        self.file = Some(tokio::fs::File::create(&self.part).await.map_err(self.io("creating"))?);
        self.hasher = Sha256::new();
        self.received = 0;
        self.total = response.content_length();
        self.validator = response
            .headers()
            .get(ETAG)
            .filter(|tag| !tag.as_bytes().starts_with(b"W/"))
            .cloned();
        self.sniffing = true;
        self.receive(response).await
    }

    /// Appends the body to the part file, hashing it, and checks it is complete.
    async fn receive(&mut self, mut response: Response) -> Result<(), ClientError> {
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => return Err(self.truncated(Some(err))),
            };
            if self.sniffing {
                match first_meaningful_byte(&chunk, self.received == 0) {
                    Some(b'<') => {
                        let what = if chunk.trim_ascii_start().starts_with(b"<?xml") {
                            "an XML document"
                        } else {
                            "an HTML page"
                        };
                        return Err(self.not_a_report(what, chunk.to_vec(), response).await);
                    }
                    Some(b'{') => return Err(self.not_a_report("a JSON document", chunk.to_vec(), response).await),
                    Some(_) => self.sniffing = false,
                    None => {}
                }
            }
            let io = self.io("writing");
            let file = match self.file.as_mut() {
                Some(file) => file,
                None => return Err(io(std::io::Error::other("the part file is not open"))),
            };
            file.write_all(&chunk).await.map_err(io)?;
            self.hasher.update(&chunk);
            self.received += chunk.len() as u64;
        }
        if self.total.is_some_and(|n| n != self.received) {
            return Err(self.truncated(None));
        }
        Ok(())
    }

    /// The error for a body that is not a report, with an excerpt of its start.
    async fn not_a_report(&mut self, what: &'static str, mut head: Vec<u8>, mut response: Response) -> ClientError {
        while head.len() < NOT_A_REPORT_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        head.truncate(NOT_A_REPORT_READ);
        let excerpt = sanitize_to(&String::from_utf8_lossy(&head), self.secrets, NOT_A_REPORT_SHOW);
        ClientError::NotAReport {
            url: self.shown.to_owned(),
            what,
            excerpt,
        }
    }

    /// Syncs the complete part file and moves it to `dest`.
    async fn finish(&mut self, dest: &Path) -> Result<(), ClientError> {
        let mut file = match self.file.take() {
            Some(file) => file,
            // Only an attempt that got a body reports success, and it opened the file.
            None => tokio::fs::File::create(&self.part).await.map_err(self.io("creating"))?,
        };
        file.flush().await.map_err(self.io("writing"))?;
        file.sync_all().await.map_err(self.io("syncing"))?;
        drop(file);
        tokio::fs::rename(&self.part, dest)
            .await
            .map_err(|source| ClientError::Io {
                action: "moving the finished download to",
                path: dest.to_owned(),
                source,
            })?;
        self.guard.keep();
        sync_parent_dir(dest).await;
        Ok(())
    }
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL); TOTAL is `None` for `*`.
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?.trim();
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse::<u64>().ok().filter(|t| *t > end)?),
    };
    Some((start, total))
}

/// What a `Content-Type` says the body is, when it is plainly not a CSV file.
fn non_report_content_type(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let mime = value.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "text/html" | "application/xhtml+xml" => Some("an HTML page"),
        "application/json" => Some("a JSON document"),
        m if m.ends_with("+json") => Some("a JSON document"),
        _ => None,
    }
}

/// The first byte of `chunk` that is not ASCII white space (nor, at the very start of
/// the body, a UTF-8 byte order mark); `None` when there is none yet.
fn first_meaningful_byte(chunk: &[u8], body_start: bool) -> Option<u8> {
    let chunk = match chunk.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if body_start => rest,
        _ => chunk,
    };
    chunk.iter().copied().find(|b| !b.is_ascii_whitespace())
}

async fn download_status_error(shown: &str, response: Response, secrets: &[&str]) -> ClientError {
    let status = response.status();
    if status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST {
        let body_excerpt = body_excerpt(response, secrets).await;
        if status == StatusCode::FORBIDDEN || body_excerpt.to_ascii_lowercase().contains("expired") {
            return ClientError::UrlExpired {
                url: shown.to_owned(),
                status,
                body_excerpt,
            };
        }
        return ClientError::UnexpectedStatus {
            op: format!("downloading {shown}"),
            status,
            body_excerpt,
        };
    }
    status_error(format!("downloading {shown}"), response, secrets).await
}

/// `dest` with `.part` appended to its file name.
fn part_path(dest: &Path) -> Option<PathBuf> {
    let mut name: OsString = dest.file_name()?.to_owned();
    name.push(".part");
    Some(dest.with_file_name(name))
}

/// Makes the rename durable where the platform allows; a failure only loses
/// durability across a crash, not the file, so it is logged and otherwise ignored.
async fn sync_parent_dir(dest: &Path) {
    #[cfg(unix)]
    {
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let synced = match tokio::fs::File::open(&dir).await {
            Ok(handle) => handle.sync_all().await,
            Err(e) => Err(e),
        };
        if let Err(error) = synced {
            tracing::debug!(dir = %dir.display(), %error, "could not sync directory after rename");
        }
    }
    #[cfg(not(unix))]
    let _ = dest;
}

/// Removes the partial file when dropped, unless [`PartFile::keep`] was called: on
/// error and on cancellation alike.
struct PartFile {
    path: Option<PathBuf>,
}

impl PartFile {
    fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    fn keep(&mut self) {
        self.path = None;
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "could not remove partial download");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn content_range_is_read_strictly() {
        let read = |v| content_range(&headers(&[("content-range", v)]));
        assert_eq!(read("bytes 100-999/1000"), Some((100, Some(1000))));
        assert_eq!(read("bytes 100-199/*"), Some((100, None)));
        assert_eq!(read("bytes 100-999/999"), None);
        assert_eq!(read("bytes 200-100/1000"), None);
        assert_eq!(read("bytes */1000"), None);
        assert_eq!(read("items 0-1/2"), None);
        assert_eq!(content_range(&HeaderMap::new()), None);
    }

    #[test]
    fn html_and_json_content_types_are_not_reports() {
        let kind = |v| non_report_content_type(&headers(&[("content-type", v)]));
        assert_eq!(kind("text/html; charset=utf-8"), Some("an HTML page"));
        assert_eq!(kind("Text/HTML"), Some("an HTML page"));
        assert_eq!(kind("application/json"), Some("a JSON document"));
        assert_eq!(kind("application/problem+json"), Some("a JSON document"));
        assert_eq!(kind("text/csv"), None);
        assert_eq!(kind("application/octet-stream"), None);
        assert_eq!(non_report_content_type(&HeaderMap::new()), None);
    }

    #[test]
    fn the_first_meaningful_byte_skips_blanks_and_a_bom() {
        assert_eq!(first_meaningful_byte(b"  \r\n<html>", true), Some(b'<'));
        assert_eq!(first_meaningful_byte(b"\xEF\xBB\xBF{", true), Some(b'{'));
        assert_eq!(first_meaningful_byte(b"\xEF\xBB\xBFa,b", true), Some(b'a'));
        assert_eq!(first_meaningful_byte(b"\xEF\xBB\xBF{", false), Some(0xEF));
        assert_eq!(first_meaningful_byte(b" \t\n", true), None);
        assert_eq!(first_meaningful_byte(b"", true), None);
    }
}
