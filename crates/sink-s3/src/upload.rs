//! Uploading a run's CSV from its spool file: one `PutObject`, or a multipart upload
//! with bounded concurrency and memory, aborted on failure or cancellation.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use connectly_sink::{RunData, RunInfo, SinkError, layout};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::errors::Call;
use crate::spool::{self, Digested, Piece, ReadError};
use crate::{ChecksumMode, Inner, MAX_PARTS, META_RUN_ID, META_SHA256, Store, short};

/// Rounds up to a whole MiB.
fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20) * (1 << 20)
}

/// Aborts a multipart upload when dropped before [`AbortGuard::disarm`]: the delivery
/// was cancelled (its future dropped) while parts were uploading.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Aborts the upload now; failures are logged (the parts then wait for the
    /// bucket's lifecycle rule).
    async fn abort(&mut self, sink: &str) {
        self.armed = false;
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id, sink).await;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(bucket = %self.bucket, key = %self.key, "a cancelled multipart upload could not be aborted (no runtime)");
            return;
        };
        let (client, bucket, key, upload_id) = (
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        );
        runtime.spawn(async move { abort_upload(&client, &bucket, &key, &upload_id, "cancelled delivery").await });
    }
}

async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str, sink: &str) {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => tracing::debug!(sink, bucket, key, "multipart upload aborted"),
        Err(error) => tracing::warn!(
            sink,
            bucket,
            key,
            error = %crate::errors::root_cause(&error),
            "aborting a multipart upload failed; its parts remain until a lifecycle rule removes them"
        ),
    }
}

impl Inner {
    fn spool_error(&self, data: &RunData, error: &std::io::Error) -> SinkError {
        // The spool is ours: a missing or unreadable spool file will not heal by waiting.
        SinkError::permanent(
            &self.name,
            format!("reading the spool file {}: {error}", data.path.display()),
        )
    }

    /// The error for spool content that is not what `data` declares, if it is not.
    fn verify(&self, data: &RunData, read: &Digested, key: &str) -> Result<(), SinkError> {
        if read.bytes == data.bytes && crate::same_sha(&read.sha256, &data.sha256) {
            return Ok(());
        }
        let found = if read.bytes > data.bytes {
            format!("more than {} bytes", data.bytes)
        } else {
            format!("{} bytes with SHA-256 {}…", read.bytes, short(&read.sha256))
        };
        Err(self.permanent(format!(
            "the spool file {} does not hold the declared content ({found}, expected {} bytes with SHA-256 {}…); \
             nothing was published to {}",
            data.path.display(),
            data.bytes,
            short(&data.sha256),
            self.url(key)
        )))
    }

    /// Uploads the spool file to `key`, verified; visible only if it matches `data`.
    pub(crate) async fn upload(
        self: Arc<Self>,
        store: &Store,
        run: &RunInfo,
        data: &RunData,
        key: &str,
    ) -> Result<(), SinkError> {
        if data.bytes > self.options.multipart_threshold && data.bytes > 0 {
            self.upload_multipart(store, run, data, key).await
        } else {
            self.put_whole(store, run, data, key).await
        }
    }

    async fn put_whole(&self, store: &Store, run: &RunInfo, data: &RunData, key: &str) -> Result<(), SinkError> {
        let path = data.path.clone();
        let declared = data.bytes;
        let (piece, read) = match tokio::task::spawn_blocking(move || spool::read_whole(&path, declared)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(self.spool_error(data, &e)),
            Err(e) => return Err(self.join_error(e)),
        };
        self.verify(data, &read, key)?;
        let call = self.call(store, "uploading", Some(key));
        let mut request = store
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type("text/csv")
            .content_md5(piece.content_md5)
            .content_length(piece.data.len() as i64)
            .metadata(META_RUN_ID, layout::encode_component(run.run_id.as_str()))
            .metadata(META_SHA256, read.sha256);
        if self.config.checksum == ChecksumMode::WhenSupported {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        request
            .body(ByteStream::from(piece.data))
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        Ok(())
    }

    fn join_error(&self, error: tokio::task::JoinError) -> SinkError {
        if error.is_cancelled() {
            SinkError::retriable(&self.name, "the upload was cancelled (the runtime is shutting down)")
        } else {
            SinkError::permanent(&self.name, format!("an upload task panicked: {error}"))
        }
    }

    /// The part size for a run of `bytes` bytes: the configured one, grown (in whole
    /// MiB) when the run would need more than 10,000 parts.
    fn part_size(&self, bytes: u64) -> u64 {
        self.options.part_size.max(round_up_mib(bytes.div_ceil(MAX_PARTS)))
    }

    async fn upload_multipart(
        self: Arc<Self>,
        store: &Store,
        run: &RunInfo,
        data: &RunData,
        key: &str,
    ) -> Result<(), SinkError> {
        let part_size = usize::try_from(self.part_size(data.bytes))
            .map_err(|_| self.permanent("the multipart part size does not fit in memory on this platform"))?;
        let checksum = self.config.checksum == ChecksumMode::WhenSupported;
        let call = self.call(store, "starting a multipart upload of", Some(key));
        let mut create = store
            .client
            .create_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type("text/csv")
            .metadata(META_RUN_ID, layout::encode_component(run.run_id.as_str()))
            .metadata(META_SHA256, data.sha256.to_ascii_lowercase());
        if checksum {
            create = create.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let created = create.send().await.map_err(|e| call.sdk_error(&e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(self.permanent(format!(
                "starting a multipart upload of {}: the store answered without an upload id",
                self.url(key)
            )));
        };
        let mut guard = AbortGuard {
            client: store.client.clone(),
            bucket: self.config.bucket.clone(),
            key: key.to_owned(),
            upload_id: upload_id.clone(),
            armed: true,
        };

        let result = Arc::clone(&self)
            .upload_parts(store, data, key, &upload_id, part_size, checksum)
            .await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                guard.abort(&self.name).await;
                return Err(e);
            }
        };
        let call = self.call(store, "completing the multipart upload of", Some(key));
        let completed = store
            .client
            .complete_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        match completed {
            Ok(_) => {
                guard.disarm();
                Ok(())
            }
            Err(e) => {
                // If the store did commit the object, aborting fails harmlessly and
                // the next delivery finds the object (and reuses it if it matches).
                guard.abort(&self.name).await;
                Err(call.sdk_error(&e))
            }
        }
    }

    /// Reads the spool in parts on a blocking thread and uploads up to `concurrency`
    /// at once; verifies the whole content before returning the parts to complete.
    async fn upload_parts(
        self: Arc<Self>,
        store: &Store,
        data: &RunData,
        key: &str,
        upload_id: &str,
        part_size: usize,
        checksum: bool,
    ) -> Result<Vec<CompletedPart>, SinkError> {
        // A piece is read only once one of `concurrency` slots is free, and its slot is
        // released when its upload ends: at most `concurrency` pieces are in memory
        // (read, waiting or uploading), so memory stays below concurrency × part size
        // whatever the run's size. Reading from a local spool is much faster than an
        // upload, so reading ahead would buy nothing.
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let (sender, mut pieces) = mpsc::channel::<(Piece, OwnedSemaphorePermit)>(1);
        let path = data.path.clone();
        let declared = data.bytes;
        let runtime = tokio::runtime::Handle::current();
        let reader_slots = Arc::clone(&slots);
        let reader = tokio::task::spawn_blocking(move || {
            spool::read_parts(
                &path,
                declared,
                part_size,
                || runtime.block_on(Arc::clone(&reader_slots).acquire_owned()).ok(),
                |piece, slot| sender.blocking_send((piece, slot)).is_ok(),
            )
        });

        let mut uploads: JoinSet<Result<CompletedPart, SinkError>> = JoinSet::new();
        let mut done: Vec<CompletedPart> = Vec::new();
        let mut failure: Option<SinkError> = None;
        loop {
            // Wait for a free slot before taking the next piece, so the reader blocks.
            while uploads.len() >= self.options.concurrency {
                if let Some(joined) = uploads.join_next().await {
                    collect(&self, joined, &mut done, &mut failure);
                }
                if failure.is_some() {
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
            let Some((piece, slot)) = pieces.recv().await else {
                break;
            };
            let task = PartTask {
                inner: Arc::clone(&self),
                client: store.client.clone(),
                endpoint: store.endpoint.clone(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                checksum,
            };
            uploads.spawn(async move {
                let uploaded = task.run(piece).await;
                drop(slot);
                uploaded
            });
        }
        // Stops the reader if we are leaving early: it may be waiting for a slot or
        // for room in the channel.
        slots.close();
        drop(pieces);
        while let Some(joined) = uploads.join_next().await {
            collect(&self, joined, &mut done, &mut failure);
        }
        let read = match reader.await {
            Ok(Ok(read)) => Some(read),
            Ok(Err(ReadError::Io(e))) => return Err(self.spool_error(data, &e)),
            Ok(Err(ReadError::Closed)) => None,
            Err(e) => return Err(self.join_error(e)),
        };
        if let Some(failure) = failure {
            return Err(failure);
        }
        let Some(read) = read else {
            return Err(self.permanent("the spool reader stopped before the end of the file"));
        };
        self.verify(data, &read, key)?;
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }
}

fn collect(
    inner: &Inner,
    joined: Result<Result<CompletedPart, SinkError>, tokio::task::JoinError>,
    done: &mut Vec<CompletedPart>,
    failure: &mut Option<SinkError>,
) {
    let outcome = joined.map_err(|e| inner.join_error(e)).and_then(|r| r);
    match outcome {
        Ok(part) => done.push(part),
        Err(e) => {
            if failure.is_none() {
                *failure = Some(e);
            }
        }
    }
}

/// What uploading one part needs, owned so it can run as its own task.
struct PartTask {
    inner: Arc<Inner>,
    client: Client,
    endpoint: String,
    key: String,
    upload_id: String,
    checksum: bool,
}

impl PartTask {
    async fn run(self, piece: Piece) -> Result<CompletedPart, SinkError> {
        let what = format!("uploading part {} of", piece.number);
        let call = Call {
            sink: &self.inner.name,
            what: &what,
            bucket: &self.inner.config.bucket,
            key: Some(&self.key),
            endpoint: &self.endpoint,
        };
        let mut request = self
            .client
            .upload_part()
            .bucket(&self.inner.config.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(piece.number)
            .content_md5(piece.content_md5)
            .content_length(piece.data.len() as i64);
        if self.checksum {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let output = request
            .body(ByteStream::from(piece.data))
            .send()
            .await
            .map_err(|e| call.sdk_error(&e))?;
        let Some(e_tag) = output.e_tag() else {
            return Err(SinkError::permanent(
                &self.inner.name,
                format!("{what} {}: the store answered without an ETag", call.target()),
            ));
        };
        Ok(CompletedPart::builder()
            .e_tag(e_tag)
            .part_number(piece.number)
            .set_checksum_crc32(output.checksum_crc32().map(str::to_owned))
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_grow_to_fit_ten_thousand_parts() {
        assert_eq!(round_up_mib(1), 1 << 20);
        assert_eq!(round_up_mib(1 << 20), 1 << 20);
        // 100 GiB in 8 MiB parts would be 12,800 parts: grow to 11 MiB.
        let bytes: u64 = 100 << 30;
        let size = (8u64 << 20).max(round_up_mib(bytes.div_ceil(MAX_PARTS)));
        assert_eq!(size, 11 << 20);
        assert!(bytes.div_ceil(size) <= MAX_PARTS);
    }
}
