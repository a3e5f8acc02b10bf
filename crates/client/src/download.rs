use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use connectly_model::SignedUrl;
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{ReportsClient, elapsed_ms, status_error};
use crate::error::ClientError;
use crate::excerpt::body_excerpt;

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
    /// A 403 (or a 400 that names expiry) gives [`ClientError::UrlExpired`]: list the
    /// reports again for a fresh URL. A broken or short body gives
    /// [`ClientError::Truncated`]. Errors and logs show the URL without its query.
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
        let mut response = self
            .downloads
            .get(parsed)
            .send()
            .await
            .map_err(|e| ClientError::network(op(), e))?;
        let status = response.status();
        tracing::debug!(
            url = shown,
            status = status.as_u16(),
            elapsed_ms = elapsed_ms(started),
            "download answered"
        );
        if !status.is_success() {
            return Err(download_status_error(shown, response, &secrets).await);
        }
        let expected = response.content_length();

        let mut guard = PartFile::new(part.clone());
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| ClientError::Io { action, path, source }
        };
        let mut file = tokio::fs::File::create(&part).await.map_err(io("creating", &part))?;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => {
                    return Err(ClientError::Truncated {
                        url: shown.to_owned(),
                        expected,
                        received,
                        source: Some(err.without_url()),
                    });
                }
            };
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io("writing", &part))?;
            received += chunk.len() as u64;
        }
        if expected.is_some_and(|n| n != received) {
            return Err(ClientError::Truncated {
                url: shown.to_owned(),
                expected,
                received,
                source: None,
            });
        }
        file.flush().await.map_err(io("writing", &part))?;
        file.sync_all().await.map_err(io("syncing", &part))?;
        drop(file);
        tokio::fs::rename(&part, dest)
            .await
            .map_err(io("moving the finished download to", dest))?;
        guard.keep();
        sync_parent_dir(dest).await;

        let sha256 = hex::encode(hasher.finalize());
        tracing::debug!(
            url = shown,
            dest = %dest.display(),
            bytes = received,
            sha256 = %sha256,
            elapsed_ms = elapsed_ms(started),
            "downloaded"
        );
        Ok(Download {
            bytes: received,
            sha256,
        })
    }
}

async fn download_status_error(shown: &str, response: reqwest::Response, secrets: &[&str]) -> ClientError {
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
