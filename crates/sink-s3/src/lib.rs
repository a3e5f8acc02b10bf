//! A connectly-sync sink that stores each run's CSV in Amazon S3 or an S3-compatible
//! object store (MinIO, Ceph, Cloudflare R2, ...), with a JSON manifest beside it.
//!
//! # Naming the sink
//! `s3://BUCKET[/PREFIX][?OPTIONS]` ([`S3Config::from_uri`]), for example
//! `s3://analytics/connectly` on AWS, or
//! `s3://reports?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true` for a
//! local MinIO. The sink's name is `s3://BUCKET/PREFIX`, without options.
//!
//! `connectly-sync` builds it from `--sink s3://…` (with its default `s3` feature);
//! `docs/sinks.md` describes it for operators. Use it alone (with the orchestrator, or
//! from your own code) when you want the same verified, idempotent copies in a bucket.
//! Naming a sink does no I/O:
//!
//! ```
//! use connectly_sink::{RunInfo, Sink};
//! use connectly_sink_s3::{ChecksumMode, S3Sink};
//!
//! let sink = S3Sink::from_uri("s3://analytics/connectly?region=eu-west-1").unwrap();
//! assert_eq!(sink.name(), "s3://analytics/connectly");
//! assert_eq!(sink.config().region.as_deref(), Some("eu-west-1"));
//! assert_eq!(sink.config().checksum, ChecksumMode::WhenRequired);
//!
//! let run = RunInfo {
//!     business_id: "2d503e81-e270-4467-a05f-21a900efbbc1".into(),
//!     report_id: "r1".into(),
//!     report_name: "Daily".into(),
//!     report_type: "campaign.daily.v1".into(),
//!     run_id: "run-1".into(),
//!     completed_at: time::macros::datetime!(2025-04-30 12:00 UTC),
//! };
//! let key = sink.data_key(&run);
//! assert!(key.starts_with("connectly/") && key.ends_with("/run_date=2025-04-30/run-1.csv"));
//!
//! // Credentials never go in the URI.
//! assert!(S3Sink::from_uri("s3://AKIA:secret@analytics").is_err());
//! ```
//!
//! Delivering needs the store (and a Tokio runtime), so it is not run here:
//!
//! ```no_run
//! # async fn demo(run: connectly_sink::RunInfo, data: connectly_sink::RunData) -> Result<(), Box<dyn std::error::Error>> {
//! use connectly_sink::Sink;
//! use connectly_sink_s3::S3Sink;
//!
//! let sink = S3Sink::from_uri("s3://reports?endpoint=http://127.0.0.1:9000&region=us-east-1")?;
//! sink.check().await?; // HeadBucket: the bucket exists and the credentials may use it
//! let receipt = sink.deliver(&run, &data).await?;
//! println!("{}", receipt.location); // s3://reports/…/<run id>.csv
//! # Ok(()) }
//! ```
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `endpoint=URL` | the store's `http(s)://` URL | `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`, else AWS |
//! | `region=NAME` | the region requests are signed for | `AWS_REGION`, the profile's region; `us-east-1` when an endpoint is set and nothing else says |
//! | `path_style=true\|false` | `ENDPOINT/BUCKET/KEY` instead of `BUCKET.ENDPOINT/KEY` | true when the endpoint's host is `localhost` or an IP address |
//! | `checksum=when_required\|when_supported` | when the SDK adds CRC32 checksums (`aws-chunked` bodies, which some stores reject) | `when_required` |
//! | `profile=NAME` | the AWS profile for credentials and region | `AWS_PROFILE`, else `default` |
//!
//! Credentials never go in the URI (a `user:password@` or an option that looks like a
//! key, secret or token is refused): the sink uses the standard AWS credential chain —
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, web identity,
//! profiles (`~/.aws/credentials`, `credential_process`, SSO), container and instance
//! roles. Options and the environment are read, and the client is built, on the first
//! call that needs the store; [`S3Sink::from_uri`] does no I/O.
//!
//! # Layout
//! Under the prefix, each run lands under the key shared by every file-like sink
//! ([`connectly_sink::layout`]), exactly as the file sink lays out its folder:
//!
//! ```text
//! s3://BUCKET/PREFIX/business_id=<business id>/report_type=campaign.daily.v1/run_date=2025-04-30/<run id>.csv            the CSV, exactly as served
//! s3://BUCKET/PREFIX/business_id=<business id>/report_type=campaign.daily.v1/run_date=2025-04-30/<run id>.manifest.json  its manifest (commit marker)
//! ```
//!
//! The CSV is stored with `Content-Type: text/csv` and the manifest ([`Manifest`], the
//! same JSON the file sink writes) with `application/json`. Both carry user metadata
//! `run-id` (the run id, percent-encoded as in the key) and `sha256` (the CSV's SHA-256,
//! lowercase hex), i.e. the headers `x-amz-meta-run-id` and `x-amz-meta-sha256`.
//!
//! # Uploads and integrity
//! - A run of at most [`S3Options::multipart_threshold`] bytes (16 MiB by default) is read
//!   into memory, counted and hashed, and sent with one `PutObject` carrying
//!   `Content-MD5`, so the store verifies what it received.
//! - A larger run is a multipart upload: one blocking thread reads the spool file in
//!   [`S3Options::part_size`] pieces (8 MiB by default; larger when a run would need more
//!   than 10,000 parts), hashing as it goes, while up to [`S3Options::concurrency`] parts
//!   (4 by default) upload at once, each with its own `Content-MD5`. A part is read
//!   only when an upload slot is free, so memory stays below `concurrency × part_size`
//!   whatever the run's size.
//! - Before the object becomes visible (before `PutObject`, before
//!   `CompleteMultipartUpload`) the sink checks that the spool held exactly
//!   [`RunData::bytes`] bytes with SHA-256 [`RunData::sha256`]; otherwise nothing is
//!   published and the delivery fails permanently. A failed or cancelled multipart upload
//!   is aborted (`AbortMultipartUpload`), so no parts are left behind; a bucket lifecycle
//!   rule `AbortIncompleteMultipartUpload` is still good practice for a killed process.
//! - After the upload the sink reads the object's size and `sha256` metadata back
//!   (`HeadObject`) and only then writes the manifest. **The manifest is the commit
//!   marker**: a run is held ([`Sink::holds`]) when its manifest exists, parses, names the
//!   run's SHA-256 and the CSV beside it, and that CSV exists with the recorded size and
//!   `sha256` metadata.
//! - With `checksum=when_supported` the SDK also sends CRC32 checksums, which S3 stores
//!   with the object.
//!
//! # Idempotence
//! Redelivering a held run uploads nothing and reports `already_present`, so re-running
//! a sync creates no new object and no new version. A CSV without its manifest (a crash
//! between the two) is reused when its size and `sha256` metadata match, and replaced
//! otherwise. A manifest naming *another* SHA-256 is never overwritten: that delivery
//! fails permanently, naming both hashes. Deliveries of the same run within one process
//! are serialised; two processes delivering the same run into one prefix at the same
//! time are not supported.
//!
//! # Errors
//! Retriable ([`SinkError::Retriable`]): throttling (`SlowDown`, HTTP 429 and 503),
//! `RequestTimeout`, other 5xx answers, timeouts, connection failures (the message says
//! the endpoint could not be reached) and credential providers that timed out. The SDK
//! already retries each request with its standard backoff before the sink reports it.
//! Permanent ([`SinkError::Permanent`]): `AccessDenied`, `NoSuchBucket`, refused
//! credentials (`InvalidAccessKeyId`, `SignatureDoesNotMatch`), no credentials or no
//! region configured, a bucket in another region, an unusable spool file, content that
//! does not match its declared size and SHA-256, and a manifest holding another version.
//! Messages start with the sink's name and say what was being done to which
//! `s3://bucket/key`, with the store's error code and HTTP status; they never contain
//! credentials or signatures.
//!
//! The sink needs `s3:GetObject`, `s3:PutObject`, `s3:AbortMultipartUpload` and
//! `s3:ListBucket` (without it, S3 answers `AccessDenied` instead of "no such key" for a
//! run not yet delivered). `Sink::probe` (what `connectly-sync check` runs) also
//! needs `s3:DeleteObject`: it sends `HeadBucket`, then puts and deletes an object
//! `.connectly-sync-probe-<pid>-<nanos>` under the prefix. Deliveries never delete.
//!
//! # Querying the bucket
//! ```sql
//! -- DuckDB (with the httpfs extension and S3 credentials configured):
//! SELECT business_id, report_type, run_date, count(*) AS rows
//! FROM read_csv('s3://BUCKET/PREFIX/business_id=*/report_type=*/run_date=*/*.csv', hive_partitioning = true, union_by_name = true)
//! GROUP BY ALL;
//! ```
//! Athena, Trino and Spark read the same `key=value` prefixes as partitions. A CSV is
//! visible a moment before its manifest; readers that must only see committed runs
//! select through the manifests (`*.manifest.json`).
//!
//! The sink's methods must be called within a Tokio runtime.

mod config;
mod errors;
mod spool;
#[cfg(feature = "testing")]
pub mod testing;
mod upload;

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, ProvideCredentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError, layout};
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

pub use aws_sdk_s3::config::SharedCredentialsProvider;
pub use config::{ChecksumMode, S3Config, S3ConfigError};
pub use connectly_sink::{MANIFEST_FORMAT_VERSION, Manifest};

use crate::errors::Call;

/// The smallest part S3 accepts in a multipart upload (except the last part).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The largest object a single `PutObject` may create.
const MAX_PUT_SIZE: u64 = 5 << 30;
/// The most parts a multipart upload may have.
const MAX_PARTS: u64 = 10_000;
/// Locks serialising deliveries of the same run; runs hash onto one of them.
const LOCK_STRIPES: usize = 64;
/// How many hex digits of a SHA-256 messages show.
const HASH_PREFIX: usize = 12;
/// The user metadata keys (`x-amz-meta-…`).
const META_RUN_ID: &str = "run-id";
const META_SHA256: &str = "sha256";
/// A manifest larger than this is not one of ours.
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Tuning and test hooks for an [`S3Sink`]; `S3Options::default()` suits production.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct S3Options {
    /// Credentials to use instead of the standard AWS chain (tests, embedding
    /// applications with their own credential source).
    pub credentials: Option<SharedCredentialsProvider>,
    /// Runs larger than this use a multipart upload; others a single `PutObject`.
    /// 16 MiB by default; at most 5 GiB.
    pub multipart_threshold: u64,
    /// The size of each uploaded part: at least 5 MiB ([`MIN_PART_SIZE`]). 8 MiB by default.
    pub part_size: u64,
    /// How many parts upload at once: at least 1. 4 by default.
    pub concurrency: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            credentials: None,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            concurrency: 4,
        }
    }
}

impl S3Options {
    /// Uses `provider` instead of the standard AWS credential chain.
    pub fn with_credentials(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.credentials = Some(SharedCredentialsProvider::new(provider));
        self
    }

    /// Uploads runs larger than `threshold` bytes in parts of `part_size` bytes.
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size;
        self
    }

    /// Uploads up to `parts` parts at once.
    pub fn with_concurrency(mut self, parts: usize) -> Self {
        self.concurrency = parts;
        self
    }

    fn validate(&self) -> Result<(), S3ConfigError> {
        if self.part_size < MIN_PART_SIZE || self.part_size > MAX_PUT_SIZE {
            return Err(S3ConfigError::new(format!(
                "the multipart part size must be between 5 MiB and 5 GiB, not {} bytes",
                self.part_size
            )));
        }
        if self.multipart_threshold > MAX_PUT_SIZE {
            return Err(S3ConfigError::new(
                "the multipart threshold must be at most 5 GiB (the largest single upload)",
            ));
        }
        if self.concurrency == 0 {
            return Err(S3ConfigError::new("the upload concurrency must be at least 1"));
        }
        Ok(())
    }
}

/// A sink that stores each run's CSV and manifest in an S3 bucket (see the crate docs).
///
/// Cloning is cheap; clones share the client and the per-run locks.
#[derive(Clone)]
pub struct S3Sink {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: S3Config,
    options: S3Options,
    name: String,
    store: OnceCell<Store>,
    locks: Vec<Mutex<()>>,
}

/// The client, built on first use.
struct Store {
    client: Client,
    /// The endpoint for messages, without credentials.
    endpoint: String,
}

/// Where one run's objects go.
struct RunKeys {
    data: String,
    manifest: String,
    data_name: String,
}

/// What `HeadObject` says about an object.
struct Head {
    size: u64,
    sha256: Option<String>,
}

impl S3Sink {
    /// A sink for `config`. Does no I/O; fails only on unusable `options`.
    pub fn new(config: S3Config, options: S3Options) -> Result<S3Sink, S3ConfigError> {
        options.validate()?;
        let name = config.display_name();
        Ok(S3Sink {
            inner: Arc::new(Inner {
                config,
                options,
                name,
                store: OnceCell::new(),
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        })
    }

    /// The sink a URI names: `s3://BUCKET[/PREFIX][?OPTIONS]`, or what follows `s3:`
    /// (see [`S3Config::from_uri`]), with default options. Does no I/O.
    pub fn from_uri(uri: &str) -> Result<S3Sink, S3ConfigError> {
        S3Sink::from_uri_with(uri, S3Options::default())
    }

    /// [`S3Sink::from_uri`] with `options`.
    pub fn from_uri_with(uri: &str, options: S3Options) -> Result<S3Sink, S3ConfigError> {
        S3Sink::new(S3Config::from_uri(uri)?, options)
    }

    /// Where the sink writes.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// The object key of `run`'s CSV (prefix included).
    pub fn data_key(&self, run: &RunInfo) -> String {
        self.inner.keys(run).data
    }

    /// The object key of `run`'s manifest (prefix included).
    pub fn manifest_key(&self, run: &RunInfo) -> String {
        self.inner.keys(run).manifest
    }

    /// Writes and deletes a small probe object under the prefix
    /// (`.connectly-sync-probe-<pid>-<nanos>`, never taken for a run's key); answers
    /// its key.
    async fn write_probe(&self) -> Result<String, SinkError> {
        let inner = &self.inner;
        let store = inner.store().await?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = inner
            .config
            .key(&format!(".connectly-sync-probe-{}-{nanos}", std::process::id()));
        let body = b"connectly-sync write probe\n".to_vec();
        let call = inner.call(store, "writing a probe object", Some(&key));
        store
            .client
            .put_object()
            .bucket(&inner.config.bucket)
            .key(&key)
            .content_md5(spool::content_md5(&body))
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        let call = inner.call(store, "deleting a probe object", Some(&key));
        store
            .client
            .delete_object()
            .bucket(&inner.config.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        Ok(key)
    }

    /// Checks that the bucket exists and the credentials may use it (`HeadBucket`).
    pub async fn check(&self) -> Result<(), SinkError> {
        let inner = &self.inner;
        let store = inner.store().await?;
        let call = inner.call(store, "checking the bucket", None);
        store
            .client
            .head_bucket()
            .bucket(&inner.config.bucket)
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        Ok(())
    }
}

#[async_trait]
impl Sink for S3Sink {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let inner = &self.inner;
        let store = inner.store().await?;
        let keys = inner.keys(run);
        match inner.read_manifest(store, &keys).await? {
            None => Ok(false),
            Some(Err(error)) => {
                tracing::warn!(sink = %inner.name, key = %keys.manifest, %error, "unreadable manifest");
                Ok(false)
            }
            Some(Ok(manifest)) => {
                Ok(same_sha(&manifest.sha256, sha256) && inner.data_matches(store, &keys, &manifest).await?)
            }
        }
    }

    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        Arc::clone(&self.inner).deliver(run, data).await
    }

    async fn probe(&self) -> Result<String, SinkError> {
        S3Sink::check(self).await?;
        let key = self.write_probe().await?;
        Ok(format!(
            "the bucket answered HeadBucket; wrote and deleted s3://{}/{key}",
            self.inner.config.bucket
        ))
    }
}

/// SHA-256 hex digests compare without regard to case.
fn same_sha(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn short(sha: &str) -> &str {
    sha.get(..HASH_PREFIX).unwrap_or(sha)
}

/// Whether a failed read means "no such object" (and not "no such bucket").
fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("NoSuchKey" | "NotFound") => true,
            Some(_) => false,
            None => service.raw().status().as_u16() == 404,
        },
        _ => false,
    }
}

impl Inner {
    fn keys(&self, run: &RunInfo) -> RunKeys {
        let data = layout::data_key(run);
        let data_name = data.rsplit('/').next().unwrap_or(&data).to_owned();
        RunKeys {
            data: self.config.key(&data),
            manifest: self.config.key(&layout::manifest_key(run)),
            data_name,
        }
    }

    fn permanent(&self, message: impl Into<String>) -> SinkError {
        SinkError::permanent(&self.name, message)
    }

    fn call<'a>(&'a self, store: &'a Store, what: &'a str, key: Option<&'a str>) -> Call<'a> {
        Call {
            sink: &self.name,
            what,
            bucket: &self.config.bucket,
            key,
            endpoint: &store.endpoint,
        }
    }

    /// `s3://bucket/key`, for messages and receipts.
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.config.bucket)
    }

    async fn store(&self) -> Result<&Store, SinkError> {
        self.store.get_or_try_init(|| self.connect()).await
    }

    /// Resolves region, endpoint and credentials the way AWS tools do, and builds the client.
    async fn connect(&self) -> Result<Store, SinkError> {
        let config = &self.config;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = &self.options.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let sdk = loader.load().await;
        let endpoint = config.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL_S3")
                .ok()
                .filter(|e| !e.trim().is_empty())
                .or_else(|| sdk.endpoint_url().map(str::to_owned))
        });
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.use_path_style(endpoint.as_deref()))
            .request_checksum_calculation(match config.checksum {
                ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
                _ => RequestChecksumCalculation::WhenRequired,
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let region = match sdk.region() {
            Some(region) => region.to_string(),
            None if endpoint.is_some() => {
                builder = builder.region(Region::from_static("us-east-1"));
                "us-east-1".to_owned()
            }
            None => {
                return Err(self.permanent(
                    "no AWS region is configured: add ?region=REGION to the sink URI, set AWS_REGION, \
                     or set a region in the AWS profile",
                ));
            }
        };
        let endpoint = match endpoint {
            Some(endpoint) => config::redact_endpoint(&endpoint),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        tracing::debug!(sink = %self.name, %endpoint, %region, "S3 client ready");
        Ok(Store {
            client: Client::from_conf(builder.build()),
            endpoint,
        })
    }

    /// Serialises deliveries of one run within this process.
    async fn lock(&self, key: &str) -> Option<MutexGuard<'_, ()>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let stripe = (hasher.finish() % LOCK_STRIPES as u64) as usize;
        Some(self.locks.get(stripe)?.lock().await)
    }

    /// The run's manifest: `None` when absent, `Some(Err)` when it does not parse.
    async fn read_manifest(
        &self,
        store: &Store,
        keys: &RunKeys,
    ) -> Result<Option<Result<Manifest, String>>, SinkError> {
        let call = self.call(store, "reading the manifest", Some(&keys.manifest));
        let output = match store
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(&keys.manifest)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(call.sdk_error(&e)),
        };
        if output
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_MANIFEST_BYTES))
        {
            return Ok(Some(Err("it is larger than 1 MiB".to_owned())));
        }
        let body = output.body.collect().await.map_err(|e| {
            SinkError::retriable(
                &self.name,
                format!(
                    "reading the manifest {}: the download broke off: {}",
                    self.url(&keys.manifest),
                    errors::root_cause(&e)
                ),
            )
        })?;
        Ok(Some(Manifest::from_json(&body.into_bytes()).map_err(|e| e.to_string())))
    }

    /// What the store holds at `key`, or `None`.
    async fn head(&self, store: &Store, key: &str, what: &str) -> Result<Option<Head>, SinkError> {
        let call = self.call(store, what, Some(key));
        match store
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(Head {
                size: head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                sha256: head.metadata().and_then(|m| m.get(META_SHA256)).cloned(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(call.sdk_error(&e)),
        }
    }

    /// Whether the CSV `manifest` names is this run's, with the recorded size and hash.
    async fn data_matches(&self, store: &Store, keys: &RunKeys, manifest: &Manifest) -> Result<bool, SinkError> {
        if manifest.data_file != keys.data_name {
            return Ok(false);
        }
        Ok(self
            .head(store, &keys.data, "inspecting the data object")
            .await?
            .is_some_and(|head| {
                head.size == manifest.bytes && head.sha256.is_some_and(|s| same_sha(&s, &manifest.sha256))
            }))
    }

    async fn deliver(self: Arc<Self>, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let store = self.store().await?;
        let keys = self.keys(run);
        let _serialised = self.lock(&keys.data).await;
        let location = self.url(&keys.data);

        match self.read_manifest(store, &keys).await? {
            None => {}
            Some(Err(error)) => {
                return Err(self.permanent(format!(
                    "the manifest {} is not a valid manifest ({error}); refusing to overwrite it",
                    self.url(&keys.manifest)
                )));
            }
            Some(Ok(existing)) if same_sha(&existing.sha256, &data.sha256) => {
                if self.data_matches(store, &keys, &existing).await? {
                    tracing::debug!(sink = %self.name, key = %keys.data, "run already present");
                    return Ok(Delivered {
                        location,
                        already_present: true,
                    });
                }
                tracing::warn!(
                    sink = %self.name,
                    key = %keys.data,
                    "the manifest is present but its data object is missing or differs; delivering again"
                );
            }
            Some(Ok(existing)) => {
                return Err(self.permanent(format!(
                    "{} already holds another version of run {}: SHA-256 {}… is stored, {}… was delivered; \
                     refusing to overwrite it",
                    self.url(&keys.manifest),
                    run.run_id,
                    short(&existing.sha256),
                    short(&data.sha256)
                )));
            }
        }

        let existing = self.head(store, &keys.data, "inspecting the data object").await?;
        let reusable = existing
            .as_ref()
            .is_some_and(|h| h.size == data.bytes && h.sha256.as_deref().is_some_and(|s| same_sha(s, &data.sha256)));
        if reusable {
            tracing::info!(sink = %self.name, key = %keys.data, "reusing the identical data object of an interrupted delivery");
        } else {
            if existing.is_some() {
                tracing::warn!(sink = %self.name, key = %keys.data, "replacing an uncommitted data object (no manifest) with other content");
            }
            Arc::clone(&self).upload(store, run, data, &keys.data).await?;
            self.confirm(store, &keys.data, data).await?;
        }

        let manifest = Manifest::new(
            run,
            data,
            data.sha256.to_ascii_lowercase(),
            &keys.data_name,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| {
            self.permanent(format!(
                "formatting the timestamps of {}: {e}",
                self.url(&keys.manifest)
            ))
        })?;
        self.put_manifest(store, run, &keys, &manifest).await?;
        tracing::debug!(sink = %self.name, key = %keys.data, bytes = data.bytes, "run delivered");
        Ok(Delivered {
            location,
            already_present: false,
        })
    }

    /// Reads the uploaded object's size and `sha256` metadata back.
    async fn confirm(&self, store: &Store, key: &str, data: &RunData) -> Result<(), SinkError> {
        let what = "confirming the upload of";
        match self.head(store, key, what).await? {
            None => Err(SinkError::retriable(
                &self.name,
                format!("{what} {}: the object is not visible after its upload", self.url(key)),
            )),
            Some(head) if head.size != data.bytes => Err(self.permanent(format!(
                "{what} {}: the store holds {} bytes, {} were uploaded",
                self.url(key),
                head.size,
                data.bytes
            ))),
            Some(head) if !head.sha256.as_deref().is_some_and(|s| same_sha(s, &data.sha256)) => {
                Err(self.permanent(format!(
                    "{what} {}: the object's `sha256` metadata is missing or differs from the uploaded content's",
                    self.url(key)
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Writes the manifest: the run's commit marker.
    async fn put_manifest(
        &self,
        store: &Store,
        run: &RunInfo,
        keys: &RunKeys,
        manifest: &Manifest,
    ) -> Result<(), SinkError> {
        let mut json = manifest.to_json();
        json.push(b'\n');
        let call = self.call(store, "writing the manifest", Some(&keys.manifest));
        store
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(&keys.manifest)
            .content_type("application/json")
            .content_md5(spool::content_md5(&json))
            .content_length(json.len() as i64)
            .metadata(META_RUN_ID, layout::encode_component(run.run_id.as_str()))
            .metadata(META_SHA256, manifest.sha256.clone())
            .body(ByteStream::from(json))
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        Ok(())
    }
}
