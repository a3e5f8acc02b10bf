//! A connectly-sync sink that keeps a byte-identical copy of each run's CSV in a
//! partitioned folder, with a JSON manifest beside it.
//!
//! `connectly-sync` builds it from `--sink file:DIR`; `docs/sinks.md` describes it for
//! operators. Use it alone (with the orchestrator, or from your own code) when you
//! want the same verified, atomic, idempotent copies in a folder. It does its file I/O
//! on Tokio's blocking pool, so it needs a Tokio runtime.
//!
//! ```
//! use connectly_sink::{Manifest, RunData, RunInfo, Sink};
//! use connectly_sink_file::FileSink;
//! use sha2::{Digest, Sha256};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scratch = tempfile::tempdir()?;
//! // The run's CSV as the orchestrator spools it, with its size and SHA-256.
//! let csv = b"day,sent\n2025-04-30,12\n";
//! let spool = scratch.path().join("spooled.csv");
//! std::fs::write(&spool, csv)?;
//! let data = RunData {
//!     path: spool,
//!     bytes: csv.len() as u64,
//!     sha256: hex::encode(Sha256::digest(csv)),
//!     rows: 1,
//! };
//! let run = RunInfo {
//!     business_id: "2d503e81-e270-4467-a05f-21a900efbbc1".into(),
//!     report_id: "r1".into(),
//!     report_name: "Daily".into(),
//!     report_type: "campaign.daily.custom".into(),
//!     run_id: "run-1".into(),
//!     completed_at: time::macros::datetime!(2025-04-30 12:00 UTC),
//! };
//!
//! let sink = FileSink::new(scratch.path().join("reports"));
//! sink.check().await?; // creates the root; writes and deletes a probe file
//! let receipt = sink.deliver(&run, &data).await?;
//! println!("delivered to {}", receipt.location);
//! assert_eq!(std::fs::read(sink.data_path(&run)?)?, csv);
//! let manifest = Manifest::from_json(&std::fs::read(sink.manifest_path(&run)?)?)?;
//! assert_eq!((manifest.rows, manifest.sha256.as_str()), (1, data.sha256.as_str()));
//!
//! // Delivering the same run again changes nothing.
//! assert!(sink.deliver(&run, &data).await?.already_present);
//! assert!(sink.holds(&run, &data.sha256).await?);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! Every run lands under the key shared by all file-like sinks
//! ([`connectly_sink::layout`]), below the root folder given to [`FileSink::new`]:
//!
//! ```text
//! <root>/
//! └── business_id=2d503e81-e270-4467-a05f-21a900efbbc1/
//!     ├── report_type=campaign.daily.v1/
//!     │   ├── run_date=2025-04-30/
//!     │   │   ├── c80716a5-62c5-4ba5-b99d-5c2a6fd39317.csv            the CSV, exactly as served
//!     │   │   └── c80716a5-62c5-4ba5-b99d-5c2a6fd39317.manifest.json  its manifest (commit marker)
//!     │   └── run_date=2025-05-01/
//!     │       ├── 5d0f….csv
//!     │       └── 5d0f….manifest.json
//!     └── report_type=campaign.daily.custom/
//!         └── run_date=2025-04-30/
//!             └── …
//! ```
//!
//! The `business_id=` level lets several businesses share one root without sharing a
//! folder.
//! `run_date` is the date of the run's `completed_at`. Business ids, report types and
//! run ids are percent-encoded by the layout (only ASCII letters, digits, `-`, `_` and `.` pass), so
//! a vendor id can never name a parent folder or an absolute path; the sink also checks
//! that every path it writes stays under the root, and fails the delivery otherwise.
//! Folders are created on the first delivery, not by [`FileSink::new`].
//!
//! # The manifest
//! `<run id>.manifest.json` is pretty-printed JSON with these fields ([`Manifest`]):
//!
//! | field | meaning |
//! |---|---|
//! | `format_version` | [`MANIFEST_FORMAT_VERSION`] (`1`) |
//! | `business_id`, `report_id`, `report_name`, `report_type`, `run_id` | the run, as the vendor spelled it |
//! | `completed_at` | when the run completed, RFC 3339 |
//! | `data_file` | the CSV's file name, relative to the manifest's folder |
//! | `bytes`, `rows` | the CSV's size and number of data rows |
//! | `sha256` | the CSV's SHA-256, lowercase hex |
//! | `delivered_at` | when this sink published the run, RFC 3339, UTC |
//!
//! # Atomicity and idempotence
//! - Each file is written to a temporary file in the same folder, named
//!   `.<final name>.tmp-<pid>-<counter>-<nanos>` (hidden, and never ending in `.csv` or
//!   `.json`), flushed with `fsync`, renamed over its final name, and the folder is
//!   `fsync`ed. A reader therefore sees a final file whole or not at all. A temporary
//!   file whose writing process is dead is a crash leftover and is removed on the next
//!   delivery of that run; one of a live process (another sync delivering the same run
//!   into the same folder) is left alone.
//! - While copying from the spool, the sink counts and hashes the bytes (streaming
//!   through a 1 MiB buffer); content that does not match the declared size and SHA-256
//!   is discarded before it gets a final name.
//! - The CSV is published first and the manifest last: **the manifest is the commit
//!   marker**. A run is held ([`Sink::holds`]) when its manifest exists, parses, names
//!   the run's SHA-256, and the CSV it names exists with the recorded size. A CSV without
//!   its manifest (a crash between the two renames) is not delivered yet; the next
//!   delivery reuses it when its size and SHA-256 match, and replaces it otherwise.
//! - Redelivering a held run changes nothing and reports `already_present`. A manifest
//!   naming *another* SHA-256 is never overwritten: that delivery fails permanently.
//! - Temporary files a crashed attempt left behind are removed by the next delivery of
//!   the same run.
//! - Deliveries of the same run within one process are serialised. Two processes
//!   delivering the same run into one root at the same time both succeed: each
//!   publishes the same verified bytes by rename, so readers see one whole copy.
//!
//! # Errors
//! A full disk or quota (`ENOSPC`, `EDQUOT`), an interrupted, timed-out, would-block
//! or busy operation is [retriable](SinkError::Retriable): it may pass once space is
//! freed or the file system recovers. Everything else is
//! [permanent](SinkError::Permanent), notably a missing or unreadable spool file,
//! permission denied, a read-only file system, a path component that is a file (or a
//! final name that is a folder), spool content that does not match its declared size
//! and SHA-256, and a manifest holding another version of the run. Messages start with
//! the sink's name (`file:<root>`) and say which root-relative key failed under which root.
//!
//! # Querying the folder
//! Query engines read the `key=value` folders as columns. With DuckDB:
//!
//! ```sql
//! SELECT business_id, report_type, run_date, count(*) AS rows
//! FROM read_csv('root/business_id=*/report_type=*/run_date=*/*.csv', hive_partitioning = true, union_by_name = true)
//! GROUP BY ALL;
//!
//! -- One report type, whose columns all runs share:
//! SELECT * FROM read_csv('root/business_id=*/report_type=campaign.daily.v1/run_date=*/*.csv', hive_partitioning = true);
//!
//! -- What was delivered:
//! SELECT business_id, run_id, completed_at, rows, sha256
//! FROM read_json('root/business_id=*/report_type=*/run_date=*/*.manifest.json');
//! ```
//!
//! Temporary files never match `*.csv`. A CSV is visible to such globs a moment before
//! its manifest; readers that must only see committed runs select through the manifests.
//!
//! The sink's trait methods run their blocking file I/O on Tokio's blocking pool
//! (`spawn_blocking`), so they must be called within a Tokio runtime.

mod fsops;

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use connectly_sink::{Delivered, RunData, RunInfo, Sink, SinkError, layout};
use time::OffsetDateTime;

use crate::fsops::{CopyError, Digested, TempFile, copy_hashed, sync_dir, temp_owner, writer_alive};
pub use connectly_sink::{MANIFEST_FORMAT_VERSION, Manifest};

/// Locks serialising deliveries of the same run; runs hash onto one of them.
const LOCK_STRIPES: usize = 64;

/// How many hex digits of a SHA-256 messages show.
const HASH_PREFIX: usize = 12;

/// A sink that copies each run's CSV into a partitioned folder (see the crate docs).
///
/// Cloning is cheap; clones share the root and the per-run locks.
#[derive(Clone, Debug)]
pub struct FileSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    name: String,
    locks: Vec<Mutex<()>>,
}

/// Where one run's files go.
struct RunPaths {
    dir_key: String,
    dir: PathBuf,
    data_key: String,
    data: PathBuf,
    data_name: String,
    manifest_key: String,
    manifest: PathBuf,
    manifest_name: String,
}

impl FileSink {
    /// A sink writing below `root`. Does no I/O: folders are created on the first
    /// delivery (or by [`FileSink::check`]). Its name is `file:<root as given>`.
    pub fn new(root: impl Into<PathBuf>) -> FileSink {
        let root = root.into();
        let name = format!("file:{}", root.display());
        FileSink {
            inner: Arc::new(Inner {
                root,
                name,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        }
    }

    /// The root folder, as given.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where `run`'s CSV is (or will be) stored.
    pub fn data_path(&self, run: &RunInfo) -> Result<PathBuf, SinkError> {
        Ok(self.inner.paths(run)?.data)
    }

    /// Where `run`'s manifest is (or will be) stored.
    pub fn manifest_path(&self, run: &RunInfo) -> Result<PathBuf, SinkError> {
        Ok(self.inner.paths(run)?.manifest)
    }

    /// Checks that the root can be written: creates it if needed, then writes, syncs
    /// and deletes a probe file (a temporary name, never mistaken for a run's file).
    pub async fn check(&self) -> Result<(), SinkError> {
        self.blocking(|inner| inner.check()).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SinkError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(SinkError::retriable(
                &self.inner.name,
                "the file operation was cancelled (the runtime is shutting down)",
            )
            .with_source(e)),
            Err(e) => Err(SinkError::permanent(&self.inner.name, "the file operation panicked").with_source(e)),
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let run = run.clone();
        let sha256 = sha256.to_owned();
        self.blocking(move |inner| inner.holds(&run, &sha256)).await
    }

    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let run = run.clone();
        let data = data.clone();
        self.blocking(move |inner| inner.deliver(&run, &data)).await
    }

    async fn probe(&self) -> Result<String, SinkError> {
        FileSink::check(self).await?;
        Ok(format!(
            "wrote, synced and deleted a probe file in {}",
            self.inner.root.display()
        ))
    }
}

/// Whether an I/O failure may pass on its own (see "Errors" in the crate docs).
fn is_retriable(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::{Interrupted, QuotaExceeded, ResourceBusy, StorageFull, TimedOut, WouldBlock};
    matches!(
        kind,
        StorageFull | QuotaExceeded | Interrupted | TimedOut | WouldBlock | ResourceBusy
    )
}

/// SHA-256 hex digests compare without regard to case.
fn same_sha(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn short(sha: &str) -> &str {
    sha.get(..HASH_PREFIX).unwrap_or(sha)
}

/// The last component of a layout key.
fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl Inner {
    fn permanent(&self, message: impl Into<String>) -> SinkError {
        SinkError::permanent(&self.name, message)
    }

    /// `` `key` under <root> ``, for messages.
    fn at(&self, key: &str) -> String {
        format!("`{key}` under {}", self.root.display())
    }

    /// An I/O failure while doing `what` (which names the path), classified.
    fn io_error(&self, what: impl std::fmt::Display, error: io::Error) -> SinkError {
        let message = format!("{what}: {error}");
        let e = if is_retriable(error.kind()) {
            SinkError::retriable(&self.name, message)
        } else {
            SinkError::permanent(&self.name, message)
        };
        e.with_source(error)
    }

    /// `root/key`, refusing any key that could leave the root.
    fn under_root(&self, key: &str) -> Result<PathBuf, SinkError> {
        let relative = Path::new(key);
        let plain = !key.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
        let path = self.root.join(relative);
        if plain && path.starts_with(&self.root) {
            Ok(path)
        } else {
            Err(self.permanent(format!(
                "refusing the key `{key}`: it does not stay under {}",
                self.root.display()
            )))
        }
    }

    fn paths(&self, run: &RunInfo) -> Result<RunPaths, SinkError> {
        let dir_key = layout::run_dir(run);
        let data_key = layout::data_key(run);
        let manifest_key = layout::manifest_key(run);
        let dir = self.under_root(&dir_key)?;
        let data = self.under_root(&data_key)?;
        let manifest = self.under_root(&manifest_key)?;
        if data.parent() != Some(dir.as_path()) || manifest.parent() != Some(dir.as_path()) {
            return Err(self.permanent(format!(
                "the layout put `{data_key}` and `{manifest_key}` outside their folder `{dir_key}`"
            )));
        }
        Ok(RunPaths {
            data_name: file_name(&data_key).to_owned(),
            manifest_name: file_name(&manifest_key).to_owned(),
            dir_key,
            dir,
            data_key,
            data,
            manifest_key,
            manifest,
        })
    }

    /// Serialises deliveries of one run within this process.
    fn lock(&self, key: &str) -> Option<MutexGuard<'_, ()>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let stripe = (hasher.finish() % LOCK_STRIPES as u64) as usize;
        let lock = self.locks.get(stripe)?;
        // A poisoned lock only means another delivery panicked; the folder is still consistent.
        Some(lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn check(&self) -> Result<(), SinkError> {
        let root = self.root.display();
        fs::create_dir_all(&self.root).map_err(|e| self.io_error(format!("creating the root folder {root}"), e))?;
        let probe = "connectly-sync-check";
        let (temp, mut file) = TempFile::create(&self.root, probe)
            .map_err(|e| self.io_error(format!("creating a probe file in {root}"), e))?;
        file.write_all(b"connectly-sync write probe\n")
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error(format!("writing a probe file in {root}"), e))?;
        drop(file);
        temp.remove()
            .map_err(|e| self.io_error(format!("deleting a probe file in {root}"), e))
    }

    fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let paths = self.paths(run)?;
        match self.read_manifest(&paths)? {
            None => Ok(false),
            Some(Err(error)) => {
                tracing::warn!(sink = %self.name, key = %paths.manifest_key, %error, "unreadable manifest");
                Ok(false)
            }
            Some(Ok(manifest)) => Ok(same_sha(&manifest.sha256, sha256) && self.data_matches(&paths, &manifest)?),
        }
    }

    fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let paths = self.paths(run)?;
        let _serialised = self.lock(&paths.data_key);
        let location = paths.data.display().to_string();
        self.ensure_dir(&paths)?;
        self.remove_leftovers(&paths)?;

        match self.read_manifest(&paths)? {
            None => {}
            Some(Err(error)) => {
                return Err(self
                    .permanent(format!(
                        "the manifest {} is not a valid manifest ({error}); refusing to overwrite it",
                        self.at(&paths.manifest_key)
                    ))
                    .with_source(error));
            }
            Some(Ok(existing)) if same_sha(&existing.sha256, &data.sha256) => {
                if self.data_matches(&paths, &existing)? {
                    tracing::debug!(sink = %self.name, key = %paths.data_key, "run already present");
                    return Ok(Delivered {
                        location,
                        already_present: true,
                    });
                }
                tracing::warn!(
                    sink = %self.name,
                    key = %paths.data_key,
                    "the manifest is present but its data file is missing or has another size; delivering again"
                );
            }
            Some(Ok(existing)) => {
                return Err(self.permanent(format!(
                    "{} already holds another version of run {}: SHA-256 {}… is stored, {}… was delivered; \
                     refusing to overwrite it",
                    self.at(&paths.manifest_key),
                    run.run_id,
                    short(&existing.sha256),
                    short(&data.sha256)
                )));
            }
        }

        let sha256 = self.publish_data(&paths, data)?;
        let manifest = Manifest::new(run, data, sha256, &paths.data_name, OffsetDateTime::now_utc()).map_err(|e| {
            self.permanent(format!("formatting the timestamps of {}", self.at(&paths.manifest_key)))
                .with_source(e)
        })?;
        self.publish_manifest(&paths, &manifest)?;
        tracing::debug!(sink = %self.name, key = %paths.data_key, bytes = data.bytes, "run delivered");
        Ok(Delivered {
            location,
            already_present: false,
        })
    }

    /// Creates the run's folder; new folders' names are synced to disk.
    fn ensure_dir(&self, paths: &RunPaths) -> Result<(), SinkError> {
        if fs::metadata(&paths.dir).is_ok_and(|md| md.is_dir()) {
            return Ok(());
        }
        let what = || format!("creating the folder {}", self.at(&paths.dir_key));
        fs::create_dir_all(&paths.dir).map_err(|e| self.io_error(what(), e))?;
        // Each new folder's entry lives in its parent: `run_date=…` in `report_type=…`,
        // in `business_id=…`, in the root. Every folder from the run's parent up to the
        // root is synced, so none of the new names can be lost in a crash.
        let mut parent = paths.dir.parent();
        while let Some(dir) = parent {
            sync_dir(dir).map_err(|e| self.io_error(format!("syncing after {}", what()), e))?;
            if dir == self.root {
                break;
            }
            parent = dir.parent().filter(|p| p.starts_with(&self.root));
        }
        // The root may be new too; its parent is not ours, so this one is best effort.
        let parent = self
            .root
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(error) = sync_dir(parent) {
            tracing::debug!(sink = %self.name, %error, "could not sync the root's parent folder");
        }
        Ok(())
    }

    /// Removes temporary files an earlier, interrupted delivery of this run left behind
    /// (their writer is dead); a live writer's temporary file is left alone.
    fn remove_leftovers(&self, paths: &RunPaths) -> Result<(), SinkError> {
        let listing = || format!("listing the folder {}", self.at(&paths.dir_key));
        for entry in fs::read_dir(&paths.dir).map_err(|e| self.io_error(listing(), e))? {
            let entry = entry.map_err(|e| self.io_error(listing(), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let owner = temp_owner(name, &paths.data_name).or_else(|| temp_owner(name, &paths.manifest_name));
            match owner {
                Some(pid) if !writer_alive(pid) => {}
                _ => continue,
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(sink = %self.name, folder = %paths.dir_key, file = name, "removed a leftover temporary file");
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.io_error(
                        format!(
                            "removing the leftover temporary file `{}/{name}` under {}",
                            paths.dir_key,
                            self.root.display()
                        ),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The run's manifest: `None` when absent, `Some(Err)` when it does not parse.
    fn read_manifest(&self, paths: &RunPaths) -> Result<Option<Result<Manifest, serde_json::Error>>, SinkError> {
        match fs::read(&paths.manifest) {
            Ok(bytes) => Ok(Some(Manifest::from_json(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error(format!("reading the manifest {}", self.at(&paths.manifest_key)), e)),
        }
    }

    /// Whether the data file `manifest` names is this run's and has the recorded size.
    fn data_matches(&self, paths: &RunPaths, manifest: &Manifest) -> Result<bool, SinkError> {
        if manifest.data_file != paths.data_name {
            return Ok(false);
        }
        match fs::metadata(&paths.data) {
            Ok(md) => Ok(md.is_file() && md.len() == manifest.bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io_error(format!("inspecting the data file {}", self.at(&paths.data_key)), e)),
        }
    }

    /// Publishes the run's CSV under its final name (or keeps an identical one already
    /// there), verifying the content; returns its SHA-256.
    fn publish_data(&self, paths: &RunPaths, data: &RunData) -> Result<String, SinkError> {
        let target = || self.at(&paths.data_key);
        match fs::metadata(&paths.data) {
            Ok(md) if !md.is_file() => {
                return Err(self.permanent(format!("{} exists and is not a regular file", target())));
            }
            Ok(md) => {
                if md.len() == data.bytes {
                    let digested = File::open(&paths.data)
                        .map_err(|e| self.io_error(format!("opening the data file {}", target()), e))
                        .and_then(|mut file| {
                            copy_hashed(&mut file, None, data.bytes).map_err(|e| match e {
                                CopyError::Read(e) | CopyError::Write(e) => {
                                    self.io_error(format!("reading the data file {}", target()), e)
                                }
                            })
                        })?;
                    if digested.bytes == data.bytes && same_sha(&digested.sha256, &data.sha256) {
                        tracing::info!(sink = %self.name, key = %paths.data_key, "reusing the identical data file of an interrupted delivery");
                        return Ok(digested.sha256);
                    }
                }
                tracing::warn!(sink = %self.name, key = %paths.data_key, "replacing an uncommitted data file (no manifest) with other content");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error(format!("inspecting the data file {}", target()), e)),
        }

        let spool = data.path.display();
        let mut source =
            File::open(&data.path).map_err(|e| self.io_error(format!("opening the spool file {spool}"), e))?;
        let (temp, mut file) = TempFile::create(&paths.dir, &paths.data_name)
            .map_err(|e| self.io_error(format!("creating a temporary file for {}", target()), e))?;
        let digested = copy_hashed(&mut source, Some(&mut file), data.bytes).map_err(|e| match e {
            CopyError::Read(e) => self.io_error(format!("reading the spool file {spool}"), e),
            CopyError::Write(e) => self.io_error(format!("writing a temporary file for {}", target()), e),
        })?;
        let Digested { bytes, sha256 } = &digested;
        if *bytes != data.bytes || !same_sha(sha256, &data.sha256) {
            let read = if *bytes > data.bytes {
                format!("more than {} bytes", data.bytes)
            } else {
                format!("{bytes} bytes with SHA-256 {}…", short(sha256))
            };
            return Err(self.permanent(format!(
                "the spool file {spool} does not hold the declared content ({read}, expected {} bytes with \
                 SHA-256 {}…); nothing was published to {}",
                data.bytes,
                short(&data.sha256),
                target()
            )));
        }
        file.sync_all()
            .map_err(|e| self.io_error(format!("syncing a temporary file for {}", target()), e))?;
        drop(file);
        temp.publish(&paths.data)
            .map_err(|e| self.io_error(format!("publishing {}", target()), e))?;
        sync_dir(&paths.dir).map_err(|e| self.io_error(format!("syncing the folder of {}", target()), e))?;
        Ok(digested.sha256)
    }

    /// Publishes the manifest: the run's commit marker.
    fn publish_manifest(&self, paths: &RunPaths, manifest: &Manifest) -> Result<(), SinkError> {
        let target = || self.at(&paths.manifest_key);
        let mut json = manifest.to_json();
        json.push(b'\n');
        let (temp, mut file) = TempFile::create(&paths.dir, &paths.manifest_name)
            .map_err(|e| self.io_error(format!("creating a temporary file for {}", target()), e))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error(format!("writing a temporary file for {}", target()), e))?;
        drop(file);
        temp.publish(&paths.manifest)
            .map_err(|e| self.io_error(format!("publishing {}", target()), e))?;
        sync_dir(&paths.dir).map_err(|e| self.io_error(format!("syncing the folder of {}", target()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        use io::ErrorKind as K;
        for kind in [
            K::StorageFull,
            K::QuotaExceeded,
            K::Interrupted,
            K::TimedOut,
            K::WouldBlock,
            K::ResourceBusy,
        ] {
            assert!(is_retriable(kind), "{kind:?}");
        }
        for kind in [
            K::NotFound,
            K::PermissionDenied,
            K::ReadOnlyFilesystem,
            K::NotADirectory,
            K::IsADirectory,
            K::AlreadyExists,
            K::InvalidData,
            K::Other,
        ] {
            assert!(!is_retriable(kind), "{kind:?}");
        }
    }

    #[test]
    fn raw_os_errors_map_as_documented() {
        // ENOSPC and EDQUOT on Linux.
        #[cfg(target_os = "linux")]
        {
            assert!(is_retriable(io::Error::from_raw_os_error(28).kind()));
            assert!(is_retriable(io::Error::from_raw_os_error(122).kind()));
            assert!(!is_retriable(io::Error::from_raw_os_error(30).kind())); // EROFS
            assert!(!is_retriable(io::Error::from_raw_os_error(13).kind())); // EACCES
        }
    }

    #[test]
    fn keys_that_leave_the_root_are_refused() {
        let sink = FileSink::new("/tmp/root");
        for key in ["../x", "/etc/passwd", "a/../../b", "", "./a"] {
            assert!(sink.inner.under_root(key).is_err(), "{key}");
        }
        assert_eq!(
            sink.inner.under_root("a/b.csv").ok(),
            Some(PathBuf::from("/tmp/root/a/b.csv"))
        );
    }

    #[test]
    fn short_hashes() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
