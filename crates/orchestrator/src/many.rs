//! Several businesses synced in one go, sharing one state folder.

use futures_util::StreamExt;
use futures_util::stream;

use crate::error::SyncError;
use crate::lock::StateLock;
use crate::report::SyncReport;
use crate::sync::Syncer;

/// Syncs several businesses that share one state folder (each has its own ledger
/// entries and spool folder), at most `concurrency` at a time, under one lock.
///
/// Returns one result per syncer, in order: a failing business (its API key refused,
/// its list request failing) does not stop the others. Fails as a whole only when the
/// state folder cannot be prepared or is locked by another sync, or the syncers do not
/// share one state folder, or one of them has the same sink twice.
pub async fn sync_all(syncers: &[Syncer], concurrency: usize) -> Result<Vec<Result<SyncReport, SyncError>>, SyncError> {
    let Some(first) = syncers.first() else {
        return Ok(Vec::new());
    };
    let state = first.state_dir();
    if let Some(other) = syncers.iter().find(|s| s.state_dir() != state) {
        return Err(SyncError::Options(format!(
            "businesses synced together share one state folder; {} uses {} and {} uses {}",
            first.business_id(),
            state.display(),
            other.business_id(),
            other.state_dir().display()
        )));
    }
    for syncer in syncers {
        syncer.prepare()?;
    }
    let lock = StateLock::acquire(state)?;
    Ok(stream::iter(syncers)
        .map(|syncer| syncer.run_locked(&lock))
        .buffered(concurrency.max(1))
        .collect()
        .await)
}
