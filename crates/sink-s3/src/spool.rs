//! Reading the spool file on a blocking thread: counted, hashed (SHA-256 of the whole
//! file, MD5 of each piece for `Content-MD5`), never more than one piece at a time.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// What was read: how many bytes, with which SHA-256 (lowercase hex).
#[derive(Debug)]
pub(crate) struct Digested {
    pub bytes: u64,
    pub sha256: String,
}

/// One piece of the file: a whole small run or one part of a multipart upload.
pub(crate) struct Piece {
    /// 1-based part number.
    pub number: i32,
    pub data: Vec<u8>,
    /// Base64 MD5 of `data`, for `Content-MD5`.
    pub content_md5: String,
}

/// Base64 MD5, as `Content-MD5` wants it.
pub(crate) fn content_md5(data: &[u8]) -> String {
    BASE64.encode(Md5::digest(data))
}

/// Fills `buf` from `reader` until it holds `limit` bytes or the reader ends.
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let wanted = u64::try_from(limit.saturating_sub(buf.len())).unwrap_or(u64::MAX);
    reader.by_ref().take(wanted).read_to_end(buf)?;
    Ok(())
}

/// Reads the whole spool file, at most `declared + 1` bytes (enough to tell it is too long).
pub(crate) fn read_whole(path: &Path, declared: u64) -> io::Result<(Piece, Digested)> {
    let file = File::open(path)?;
    let mut data = Vec::with_capacity(usize::try_from(declared.saturating_add(1)).unwrap_or(0));
    file.take(declared.saturating_add(1)).read_to_end(&mut data)?;
    let digested = Digested {
        bytes: data.len() as u64,
        sha256: hex::encode(Sha256::digest(&data)),
    };
    let piece = Piece {
        number: 1,
        content_md5: content_md5(&data),
        data,
    };
    Ok((piece, digested))
}

/// Why reading parts stopped early.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The file could not be read.
    Io(io::Error),
    /// The receiving side went away (the upload failed or was cancelled).
    Closed,
}

/// Reads the spool file in pieces of `part_size` bytes (the last may be shorter), at
/// most `declared + 1` bytes in all, and hands each to `send`. Before reading a piece
/// it takes a `slot` (which blocks until one is free, e.g. until an upload finished),
/// so no more pieces are in memory than there are slots; `send` receives the slot with
/// the piece and releases it by dropping it. Returns what was read; stops with
/// [`ReadError::Closed`] when `slot` gives `None` or `send` returns false.
pub(crate) fn read_parts<S>(
    path: &Path,
    declared: u64,
    part_size: usize,
    mut slot: impl FnMut() -> Option<S>,
    mut send: impl FnMut(Piece, S) -> bool,
) -> Result<Digested, ReadError> {
    let file = File::open(path).map_err(ReadError::Io)?;
    let mut reader = file.take(declared.saturating_add(1));
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    let mut number = 0i32;
    loop {
        let Some(slot) = slot() else {
            return Err(ReadError::Closed);
        };
        let mut data = Vec::with_capacity(part_size);
        fill(&mut reader, &mut data, part_size).map_err(ReadError::Io)?;
        if data.is_empty() {
            break;
        }
        sha.update(&data);
        bytes += data.len() as u64;
        number += 1;
        let last = data.len() < part_size;
        let piece = Piece {
            number,
            content_md5: content_md5(&data),
            data,
        };
        if !send(piece, slot) {
            return Err(ReadError::Closed);
        }
        if last {
            break;
        }
    }
    Ok(Digested {
        bytes,
        sha256: hex::encode(sha.finalize()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parts_cover_the_file_and_stop_past_the_declared_size() {
        let dir = std::env::temp_dir().join(format!("connectly-s3-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool.csv");
        let content: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();

        let mut pieces = Vec::new();
        let d = read_parts(
            &path,
            1000,
            300,
            || Some(()),
            |p, ()| {
                pieces.push((p.number, p.data.len(), p.content_md5));
                true
            },
        )
        .unwrap();
        assert_eq!(d.bytes, 1000);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&content)));
        let sizes: Vec<_> = pieces.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(sizes, [(1, 300), (2, 300), (3, 300), (4, 100)]);
        assert_eq!(pieces[0].2, content_md5(&content[..300]));

        // Declared shorter than the file: reading stops one byte past it.
        let d = read_parts(&path, 500, 300, || Some(()), |_, ()| true).unwrap();
        assert_eq!(d.bytes, 501);
        let (piece, d) = read_whole(&path, 10).unwrap();
        assert_eq!((piece.data.len(), d.bytes), (11, 11));
        // A receiver that went away stops the reader.
        assert!(matches!(
            read_parts(&path, 1000, 300, || Some(()), |_, ()| false),
            Err(ReadError::Closed)
        ));
        // No more pieces are read than slots are given: with two slots that are never
        // released, the third piece is not read.
        let mut slots = 2;
        let mut sent = 0;
        let held = read_parts(
            &path,
            1000,
            300,
            || (slots > 0).then(|| slots -= 1),
            |_, ()| {
                sent += 1;
                true
            },
        );
        assert!(matches!(held, Err(ReadError::Closed)));
        assert_eq!(sent, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
