//! An example of a sink that lives outside connectly-sync's own crates: each report run
//! becomes a [JSON Lines](https://jsonlines.org) file, one object per CSV row, keyed by
//! the header's column names in header order, every value a string (a blank cell is
//! `""`).
//!
//! It uses only the public API: the [`Sink`] trait and the shared [`layout`] from
//! `connectly-sink`, the CSV reader from `connectly-csv`, and, in `src/main.rs`, the
//! stock command line from `connectly-sync`. `docs/extending.md` walks through it.
//!
//! Files land at `ROOT/business_id=…/report_type=…/run_date=…/<run>.jsonl`, beside a
//! `<run>.manifest.json` written last: a run is complete exactly when its manifest is
//! there, and a reader that wants whole runs only reads runs that have one. The
//! manifest's `bytes` and `sha256` are the run's CSV's, as the vendor served it.
//!
//! ```no_run
//! # async fn demo(run: connectly_sink::RunInfo, data: connectly_sink::RunData) -> Result<(), connectly_sink::SinkError> {
//! use connectly_sink::Sink;
//! use connectly_sink_jsonl::JsonlSink;
//!
//! let sink = JsonlSink::new("exports");
//! let receipt = sink.deliver(&run, &data).await?;
//! println!("{}", receipt.location);
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use connectly_csv::ReportReader;
use connectly_sink::{Delivered, Manifest, RunData, RunInfo, Sink, SinkError, layout};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A sink writing each run as JSON Lines under a root folder.
#[derive(Debug, Clone)]
pub struct JsonlSink {
    root: PathBuf,
    name: String,
}

impl JsonlSink {
    /// A sink writing under `root` (created on first delivery).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let name = format!("jsonl:{}", root.display());
        JsonlSink { root, name }
    }

    /// Where the run's rows go.
    pub fn data_path(&self, run: &RunInfo) -> PathBuf {
        self.root
            .join(layout::run_dir(run))
            .join(format!("{}.jsonl", layout::encode_component(run.run_id.as_str())))
    }

    /// Where the run's manifest (its commit marker) goes.
    pub fn manifest_path(&self, run: &RunInfo) -> PathBuf {
        self.root.join(layout::run_dir(run)).join(format!(
            "{}.manifest.json",
            layout::encode_component(run.run_id.as_str())
        ))
    }

    fn permanent(&self, what: String, error: io::Error) -> SinkError {
        SinkError::permanent(&self.name, what).with_source(error)
    }

    /// Blocking: creates the root if needed, then writes, syncs and deletes a probe file.
    fn probe_blocking(&self) -> Result<String, SinkError> {
        let root = self.root.display();
        std::fs::create_dir_all(&self.root).map_err(|e| self.permanent(format!("creating {root}"), e))?;
        let probe = self.root.join(format!(".connectly-sync-probe-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = File::create(&probe)?;
            file.write_all(b"probe\n")?;
            file.sync_all()
        };
        let written = write();
        let removed = std::fs::remove_file(&probe);
        written.map_err(|e| self.permanent(format!("writing a probe file in {root}"), e))?;
        removed.map_err(|e| self.permanent(format!("deleting a probe file in {root}"), e))?;
        Ok(format!("wrote, synced and deleted a probe file in {root}"))
    }

    /// Blocking: whether a manifest for this run with this SHA-256 is there.
    fn holds_blocking(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let path = self.manifest_path(run);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.permanent(format!("reading {}", path.display()), e)),
        };
        match Manifest::from_json(&text) {
            Ok(manifest) => Ok(manifest.sha256 == sha256),
            // A damaged manifest is not a commit: the run is delivered again over it.
            Err(_) => Ok(false),
        }
    }

    /// Blocking: converts the spool file, verifies it, then publishes rows and manifest.
    fn deliver_blocking(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let target = self.data_path(run);
        if self.holds_blocking(run, &data.sha256)? {
            return Ok(Delivered {
                location: target.display().to_string(),
                already_present: true,
            });
        }
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        std::fs::create_dir_all(&dir).map_err(|e| self.permanent(format!("creating {}", dir.display()), e))?;

        let temp = dir.join(format!(".{}.tmp-{}", file_name(&target), std::process::id()));
        let written = self.write_rows(data, &temp);
        let rows = match written {
            Ok(rows) => rows,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        std::fs::rename(&temp, &target).map_err(|e| self.permanent(format!("publishing {}", target.display()), e))?;

        // The manifest's `bytes` and `sha256` describe the run's CSV (what `holds` is
        // asked about), not the JSON Lines file made from it.
        let manifest = Manifest::new(
            run,
            data,
            data.sha256.clone(),
            &file_name(&target),
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| SinkError::permanent(&self.name, format!("formatting the manifest's dates: {e}")))?;
        let manifest_path = self.manifest_path(run);
        let manifest_temp = dir.join(format!(".{}.tmp-{}", file_name(&manifest_path), std::process::id()));
        let publish = || -> io::Result<()> {
            let mut file = File::create(&manifest_temp)?;
            file.write_all(&manifest.to_json())?;
            file.sync_all()?;
            std::fs::rename(&manifest_temp, &manifest_path)?;
            File::open(&dir)?.sync_all()
        };
        publish().map_err(|e| {
            let _ = std::fs::remove_file(&manifest_temp);
            self.permanent(format!("writing {}", manifest_path.display()), e)
        })?;
        debug_assert_eq!(rows, data.rows);
        Ok(Delivered {
            location: target.display().to_string(),
            already_present: false,
        })
    }

    /// Writes the rows of the spool file as JSON Lines into `temp`, hashing the spool
    /// bytes on the way; fails (nothing published) when size or hash differ from `data`.
    fn write_rows(&self, data: &RunData, temp: &Path) -> Result<u64, SinkError> {
        let spool = File::open(&data.path)
            .map_err(|e| self.permanent(format!("opening the spool file {}", data.path.display()), e))?;
        let mut hashing = Hashing::new(spool);
        let out = File::create(temp).map_err(|e| self.permanent(format!("creating {}", temp.display()), e))?;
        let mut out = BufWriter::new(out);
        let mut rows = 0;
        {
            let mut reader = ReportReader::new(&mut hashing)
                .map_err(|e| SinkError::permanent(&self.name, format!("reading {}: {e}", data.path.display())))?;
            let names: Vec<String> = reader.header().names().to_vec();
            let mut line = Vec::new();
            while let Some(row) = reader
                .next_raw_row()
                .map_err(|e| SinkError::permanent(&self.name, format!("reading {}: {e}", data.path.display())))?
            {
                line.clear();
                line.push(b'{');
                for (i, (name, cell)) in names.iter().zip(row.cells()).enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    json_string(&mut line, name);
                    line.push(b':');
                    json_string(&mut line, cell);
                }
                line.extend_from_slice(b"}\n");
                out.write_all(&line)
                    .map_err(|e| self.permanent(format!("writing {}", temp.display()), e))?;
                rows += 1;
            }
        }
        // Whatever the CSV reader left unread (nothing, normally) still counts.
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| self.permanent(format!("reading {}", data.path.display()), e))?;
        let (bytes, sha256) = hashing.finish();
        if bytes != data.bytes || sha256 != data.sha256 {
            return Err(SinkError::permanent(
                &self.name,
                format!(
                    "the spool file {} is not the run's content: {bytes} bytes with SHA-256 {sha256}, expected {} bytes with {}",
                    data.path.display(),
                    data.bytes,
                    data.sha256
                ),
            ));
        }
        let file = out
            .into_inner()
            .map_err(|e| self.permanent(format!("writing {}", temp.display()), e.into_error()))?;
        file.sync_all()
            .map_err(|e| self.permanent(format!("syncing {}", temp.display()), e))?;
        Ok(rows)
    }
}

#[async_trait]
impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn holds(&self, run: &RunInfo, sha256: &str) -> Result<bool, SinkError> {
        let (sink, run, sha256) = (self.clone(), run.clone(), sha256.to_owned());
        tokio::task::spawn_blocking(move || sink.holds_blocking(&run, &sha256))
            .await
            .map_err(|e| SinkError::retriable(self.name.clone(), format!("the file task failed: {e}")))?
    }

    async fn probe(&self) -> Result<String, SinkError> {
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.probe_blocking())
            .await
            .map_err(|e| SinkError::retriable(self.name.clone(), format!("the file task failed: {e}")))?
    }

    async fn deliver(&self, run: &RunInfo, data: &RunData) -> Result<Delivered, SinkError> {
        let (sink, run, data) = (self.clone(), run.clone(), data.clone());
        tokio::task::spawn_blocking(move || sink.deliver_blocking(&run, &data))
            .await
            .map_err(|e| SinkError::retriable(self.name.clone(), format!("the file task failed: {e}")))?
    }
}

/// Appends `text` as a JSON string literal.
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Serialising a `&str` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A reader that counts and hashes what passes through it.
struct Hashing<R> {
    inner: R,
    bytes: u64,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            bytes: 0,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
