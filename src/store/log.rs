//! The write-ahead log: what makes a write durable without a sled flush per request.
//!
//! Every write to a store tree goes through [`Tree`], which applies it to sled and appends
//! a record of it (the tree's name, the key, and the whole new value or its removal) to
//! an in-memory buffer, both under one lock, so that the log holds the writes in the
//! order sled applied them. The group-commit thread writes the buffer to the current
//! segment file and `fdatasync`s it; a write is durable once that returns.
//!
//! sled is written without a flush per request and checkpointed in the background: the
//! group-commit thread ends the current segment once it is old or full and goes on in a
//! new one, and the checkpoint thread then flushes sled, which covers every write
//! recorded in the ended segments (each was applied to sled before its record was taken
//! from the buffer), and retires them.
//!
//! At open, the segments left behind are replayed onto sled in order, then sled is
//! flushed and they are retired. Records are whole values, so replaying one that sled
//! already holds changes nothing, and a crash at any point of a checkpoint (or of a
//! replay) leaves segments that replay to the same state. A record cut short by a crash
//! can only be at the end of the last segment, in a write that was never acknowledged;
//! every earlier segment was ended by an end record before the next one was begun, so
//! one without it is damaged and stops the start.
//!
//! A write is synced with `sync_file_range` (the kernel has handed the bytes to the
//! device: a crash of the process or of the kernel loses nothing acknowledged), or, with
//! `storage.fdatasync`, with `fdatasync`, which also flushes a device's volatile write
//! cache (a power loss loses nothing acknowledged either, on a device that honours it).
//!
//! Why segments are overwritten in place: an `fdatasync` after an append that grows a
//! file also commits the file system's metadata (several times slower than one after an
//! overwrite). So a segment grows in zero-filled steps of [`GROWTH`] bytes, synced once
//! each, and records overwrite the zeros; retired segments are kept as spares and reused
//! (renamed) for new ones. Each record's checksum covers its segment's number, so a
//! record left in a reused file by its earlier segment, like the zeros, ends the reading.
//! Segment numbers only grow, across restarts too (the next one is kept in sled).
//!
//! A segment is `<data_dir>/log/<number>.log`: records of `length u32 | crc32 u32 |
//! payload`, the payload `op u8 | tree length u16 | tree | key length u32 | key | value`
//! (all little-endian; the value only for an insert), the checksum over the segment's
//! number (u64, little-endian) and the payload.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use sled::{CompareAndSwapError, IVec};

use super::StoreError;

const INSERT: u8 = 1;
const REMOVE: u8 = 2;
/// The last record of a segment the log went on from.
const END: u8 = 3;
/// Bytes before a record's payload: its length and checksum.
const HEADER: usize = 8;
/// The end record's size: a header and a payload of an empty tree name and key.
pub(super) const END_RECORD: usize = HEADER + 7;
/// A segment is zero-filled ahead of its records this many bytes at a time.
const GROWTH: u64 = 1 << 20;
/// Retired segments kept for reuse.
const SPARES: usize = 2;
/// The `meta` tree's key of the number the next segment takes.
const NEXT_SEGMENT: &[u8] = b"log_next_segment";

/// The records taken by no segment write yet, the lock that orders writes, and the
/// first failure of a write, after which the store takes no more.
#[derive(Default)]
pub struct Log {
    pending: Mutex<Vec<u8>>,
    failure: std::sync::OnceLock<String>,
}

impl Log {
    /// Keeps the first failure (of sled or of the log): no later write is made durable,
    /// so none is acknowledged (writes still reach sled's memory, so that a refused
    /// change can be undone there), and none is recorded any more. A write may have
    /// reached one of the two but not the other, so only a restart (which replays the
    /// log) goes on.
    pub(super) fn fail(&self, reason: &str) {
        if self.failure.set(reason.to_string()).is_ok() {
            tracing::error!(error = %reason, "snapshot write failed: this node accepts no more writes and reports not ready until it is restarted with a working data directory");
        }
    }

    pub(super) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// `result`, its error kept as the store's failure.
    fn kept<T>(&self, result: sled::Result<T>) -> sled::Result<T> {
        if let Err(e) = &result {
            self.fail(&e.to_string());
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().expect("log lock")
    }

    /// Appends a record, unless a write failed before.
    fn record(&self, log: &mut Vec<u8>, op: u8, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
        if self.failure.get().is_none() {
            append(log, op, tree, key, value);
        }
    }

    /// Every record appended so far, leaving the buffer empty (its capacity kept).
    pub(super) fn take(&self, into: &mut Vec<u8>) {
        into.clear();
        std::mem::swap(&mut *self.lock(), into);
    }
}

/// Appends a record with its checksum left to [`seal`].
fn append(buffer: &mut Vec<u8>, op: u8, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
    let value = value.unwrap_or_default();
    let length = 1 + 2 + tree.len() + 4 + key.len() + value.len();
    buffer.reserve(HEADER + length);
    buffer.extend_from_slice(&(length as u32).to_le_bytes());
    buffer.extend_from_slice(&[0; 4]);
    buffer.push(op);
    buffer.extend_from_slice(&(tree.len() as u16).to_le_bytes());
    buffer.extend_from_slice(tree);
    buffer.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buffer.extend_from_slice(key);
    buffer.extend_from_slice(value);
}

/// Appends the record that ends a segment.
pub(super) fn append_end(buffer: &mut Vec<u8>) {
    append(buffer, END, b"", b"", None);
}

fn checksum(segment: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Fills in the checksums of the records in `bytes` as records of segment `segment`.
fn seal(bytes: &mut [u8], segment: u64) {
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = checksum(segment, &bytes[at + HEADER..at + HEADER + length]);
        bytes[at + 4..at + HEADER].copy_from_slice(&crc.to_le_bytes());
        at += HEADER + length;
    }
}

/// One write read back from a segment.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    tree: &'a [u8],
    key: &'a [u8],
    /// `None`: the key was removed.
    value: Option<&'a [u8]>,
}

enum Entry<'a> {
    Write(Record<'a>),
    End,
}

/// The records of segment `segment` in its file's `bytes`, in order, up to the first
/// that is not one of them (zeros, a record of the file's earlier use, a torn one), and
/// whether they stopped at its end record.
fn records(bytes: &[u8], segment: u64) -> (Vec<Record<'_>>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((entry, next)) = entry_at(bytes, at, segment) {
        match entry {
            Entry::Write(record) => out.push(record),
            Entry::End => return (out, true),
        }
        at = next;
    }
    (out, false)
}

fn entry_at(bytes: &[u8], at: usize, segment: u64) -> Option<(Entry<'_>, usize)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let length = u32_at(at)? as usize;
    let crc = u32_at(at + 4)?;
    let payload = bytes.get(at + HEADER..(at + HEADER).checked_add(length)?)?;
    if length == 0 || checksum(segment, payload) != crc {
        return None;
    }
    let op = *payload.first()?;
    let tree_len = u16::from_le_bytes(payload.get(1..3)?.try_into().ok()?) as usize;
    let tree = payload.get(3..3 + tree_len)?;
    let rest = payload.get(3 + tree_len..)?;
    let key_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + key_len)?;
    let value = rest.get(4 + key_len..)?;
    let next = at + HEADER + length;
    let entry = match op {
        INSERT => Entry::Write(Record {
            tree,
            key,
            value: Some(value),
        }),
        REMOVE if value.is_empty() => Entry::Write(Record {
            tree,
            key,
            value: None,
        }),
        END if tree.is_empty() && key.is_empty() && value.is_empty() => Entry::End,
        _ => return None,
    };
    Some((entry, next))
}

/// A sled tree whose writes are logged. Reads go to sled directly.
#[derive(Clone)]
pub struct Tree {
    inner: sled::Tree,
    name: IVec,
    log: Arc<Log>,
}

impl Tree {
    pub(super) fn open(db: &sled::Db, name: &str, log: &Arc<Log>) -> sled::Result<Tree> {
        let inner = db.open_tree(name)?;
        Ok(Tree {
            name: inner.name(),
            inner,
            log: log.clone(),
        })
    }

    /// A tree of its own log, which nothing writes to disk: for tests of a store's logic.
    #[cfg(test)]
    pub fn unlogged(inner: sled::Tree) -> Tree {
        Tree {
            name: inner.name(),
            inner,
            log: Arc::default(),
        }
    }

    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<IVec>,
    ) -> sled::Result<Option<IVec>> {
        let (key, value) = (key.as_ref(), value.into());
        let mut log = self.log.lock();
        let old = self.log.kept(self.inner.insert(key, value.clone()))?;
        self.log
            .record(&mut log, INSERT, &self.name, key, Some(&value));
        Ok(old)
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        let mut log = self.log.lock();
        let old = self.log.kept(self.inner.remove(key))?;
        if old.is_some() {
            self.log.record(&mut log, REMOVE, &self.name, key, None);
        }
        Ok(old)
    }

    pub fn compare_and_swap<V1, V2>(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<V1>,
        new: Option<V2>,
    ) -> sled::Result<Result<(), CompareAndSwapError>>
    where
        V1: AsRef<[u8]>,
        V2: Into<IVec>,
    {
        let key = key.as_ref();
        let new: Option<IVec> = new.map(Into::into);
        let mut log = self.log.lock();
        let swapped = self
            .log
            .kept(self.inner.compare_and_swap(key, old, new.clone()))?;
        if swapped.is_ok() {
            match &new {
                Some(value) => self
                    .log
                    .record(&mut log, INSERT, &self.name, key, Some(value)),
                None => self.log.record(&mut log, REMOVE, &self.name, key, None),
            }
        }
        Ok(swapped)
    }
}

impl std::ops::Deref for Tree {
    type Target = sled::Tree;

    /// Reads (`get`, `iter`, `range`, `scan_prefix`, …). Writes through it would bypass
    /// the log, so every write method is defined on [`Tree`] itself and shadows sled's.
    fn deref(&self) -> &sled::Tree {
        &self.inner
    }
}

/// The segment files of a data directory, and the spares kept for reuse.
pub(super) struct Segments {
    dir: PathBuf,
    /// How the writers of these segments sync: see [`super::Checkpoints::fdatasync`].
    pub(super) fdatasync: bool,
}

impl Segments {
    pub(super) fn new(data_dir: &Path, fdatasync: bool) -> Result<Segments, StoreError> {
        let dir = data_dir.join("log");
        std::fs::create_dir_all(&dir)?;
        Ok(Segments { dir, fdatasync })
    }

    pub(super) fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}.log"))
    }

    fn spare_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("spare-{number:020}"))
    }

    /// The numbers of the segments on disk, in order.
    pub(super) fn list(&self) -> Result<Vec<u64>, StoreError> {
        self.numbered("", ".log")
    }

    fn spares(&self) -> Result<Vec<u64>, StoreError> {
        self.numbered("spare-", "")
    }

    fn numbered(&self, prefix: &str, suffix: &str) -> Result<Vec<u64>, StoreError> {
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_suffix(suffix))
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok());
            numbers.extend(number);
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The file of a new segment: a spare renamed, else a new empty file; its directory
    /// entry durable.
    fn create(&self, number: u64) -> Result<File, StoreError> {
        let path = self.path(number);
        if let Some(spare) = self.spares()?.pop() {
            std::fs::rename(self.spare_path(spare), &path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        self.sync_dir()?;
        Ok(file)
    }

    /// Retires the segments numbered up to `last`, once sled holds everything in them:
    /// the newest are kept as spares, the others deleted.
    pub(super) fn retire_through(&self, last: u64) -> Result<(), StoreError> {
        let mut spares = self.spares()?.len();
        for number in self.list()?.into_iter().rev().filter(|&n| n <= last) {
            if spares < SPARES {
                std::fs::rename(self.path(number), self.spare_path(number))?;
                spares += 1;
            } else {
                std::fs::remove_file(self.path(number))?;
            }
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Replays the segments on disk onto `db`, flushes it and retires them; the number the
/// next segment takes and the records replayed.
pub(super) fn recover(db: &sled::Db, segments: &Segments) -> Result<(u64, usize), StoreError> {
    let meta = db.open_tree("meta")?;
    let numbers = segments.list()?;
    let mut replayed = 0;
    let mut trees: Vec<(Vec<u8>, sled::Tree)> = Vec::new();
    for (i, &number) in numbers.iter().enumerate() {
        let mut bytes = Vec::new();
        File::open(segments.path(number))?.read_to_end(&mut bytes)?;
        let (records, ended) = records(&bytes, number);
        if !ended && i + 1 < numbers.len() {
            return Err(StoreError::Format(format!(
                "log segment {} is damaged after {} records: it lacks the end record every \
                 segment but the last has",
                segments.path(number).display(),
                records.len()
            )));
        }
        for record in &records {
            let tree = match trees.iter().find(|(name, _)| name == record.tree) {
                Some((_, tree)) => tree.clone(),
                None => {
                    let tree = db.open_tree(record.tree)?;
                    trees.push((record.tree.to_vec(), tree.clone()));
                    tree
                }
            };
            match record.value {
                Some(value) => tree.insert(record.key, value)?,
                None => tree.remove(record.key)?,
            };
        }
        replayed += records.len();
    }
    let kept = meta
        .get(NEXT_SEGMENT)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(1, u64::from_le_bytes);
    let next = kept.max(numbers.last().map_or(1, |n| n + 1));
    meta.insert(NEXT_SEGMENT, &next.to_le_bytes())?;
    db.flush()?;
    if let Some(&last) = numbers.last() {
        segments.retire_through(last)?;
    }
    Ok((next, replayed))
}

/// Keeps the number the next segment takes once the log is retired at a clean stop.
pub(super) fn keep_next(db: &sled::Db, next: u64) -> Result<(), StoreError> {
    db.open_tree("meta")?
        .insert(NEXT_SEGMENT, &next.to_le_bytes())?;
    Ok(())
}

/// The segment being written: the group-commit thread's end of the log.
pub(super) struct Writer {
    pub(super) number: u64,
    file: File,
    /// Where the next record goes; the bytes before it are this segment's records.
    pub(super) position: u64,
    /// How far the file is filled (zeros, or an earlier use's records) and synced.
    filled: u64,
    /// Records are synced with `fdatasync` rather than `sync_file_range`.
    fdatasync: bool,
}

impl Writer {
    pub(super) fn create(segments: &Segments, number: u64) -> Result<Writer, StoreError> {
        let file = segments.create(number)?;
        let filled = file.metadata()?.len();
        Ok(Writer {
            number,
            file,
            position: 0,
            filled,
            fdatasync: segments.fdatasync,
        })
    }

    /// Writes `records` (sealing them as this segment's) and makes them durable.
    pub(super) fn write_durably(&mut self, records: &mut [u8]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        seal(records, self.number);
        let end = self.position + records.len() as u64;
        if end > self.filled {
            let target = end.div_ceil(GROWTH) * GROWTH;
            let zeros = vec![0u8; GROWTH as usize];
            let mut at = self.filled;
            while at < target {
                let n = (target - at).min(GROWTH) as usize;
                self.file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            self.file.sync_all()?;
            self.filled = target;
        }
        self.file.write_all_at(records, self.position)?;
        if self.fdatasync {
            self.file.sync_data()?;
        } else {
            sync_range(&self.file, self.position, records.len() as u64)?;
        }
        self.position = end;
        Ok(())
    }
}

/// Waits until the bytes `offset..offset + len` of `file` are written to the device, as
/// sled does for its own log: no file metadata changes (the segment is zero-filled and
/// synced ahead), and the device's volatile write cache, if it has one, is not flushed.
fn sync_range(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: the descriptor is open for the whole call; the call reads no memory.
    let done = unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(segment: u64, build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        build(&mut bytes);
        seal(&mut bytes, segment);
        bytes
    }

    #[test]
    fn records_read_back_in_order_and_a_cut_damaged_or_foreign_tail_ends_them() {
        let bytes = sealed(3, |b| {
            append(b, INSERT, b"challenges", b"k1", Some(b"v1"));
            append(b, REMOVE, b"challenges", b"k0", None);
            append(b, INSERT, b"factors", b"", Some(b""));
        });
        let (read, ended) = records(&bytes, 3);
        assert!(!ended);
        assert_eq!(
            read,
            [
                Record {
                    tree: b"challenges",
                    key: b"k1",
                    value: Some(b"v1")
                },
                Record {
                    tree: b"challenges",
                    key: b"k0",
                    value: None
                },
                Record {
                    tree: b"factors",
                    key: b"",
                    value: Some(b"")
                },
            ]
        );
        let mut ends = Vec::new();
        let mut at = 0;
        while let Some((_, next)) = entry_at(&bytes, at, 3) {
            ends.push(next);
            at = next;
        }
        for cut in 1..bytes.len() {
            let (read, _) = records(&bytes[..cut], 3);
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(read.len(), whole, "a cut at {cut} keeps the whole records");
        }
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(records(&damaged, 3).0.len(), 2);
        // Zeros after the records (a segment's unwritten part) end them.
        let mut padded = bytes.clone();
        padded.resize(bytes.len() + 64, 0);
        assert_eq!(records(&padded, 3).0.len(), 3);
        // The same bytes are not records of another segment: a reused file's old
        // records are not read as new ones.
        assert!(records(&bytes, 4).0.is_empty());
        let ended = sealed(3, |b| {
            append(b, INSERT, b"challenges", b"k1", Some(b"v1"));
            append_end(b);
            append(b, INSERT, b"challenges", b"k2", Some(b"after the end"));
        });
        let (read, was_ended) = records(&ended, 3);
        assert_eq!((read.len(), was_ended), (1, true));
        let mut end = Vec::new();
        append_end(&mut end);
        assert_eq!(end.len(), END_RECORD);
    }

    fn open_db(dir: &Path) -> sled::Db {
        sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(None)
            .open()
            .unwrap()
    }

    fn segment(segments: &Segments, number: u64, build: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = Vec::new();
        build(&mut bytes);
        Writer::create(segments, number)
            .unwrap()
            .write_durably(&mut bytes)
            .unwrap();
    }

    #[test]
    fn recovery_replays_the_segments_in_order_and_retires_them() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path(), false).unwrap();
        // As a crash in the middle of a checkpoint leaves them: an ended segment that
        // sled may or may not hold yet, and the newer one being written, its last record
        // cut short.
        let older = |b: &mut Vec<u8>| {
            append(b, INSERT, b"challenges", b"a", Some(b"1"));
            append(b, INSERT, b"challenges", b"b", Some(b"1"));
            append_end(b);
        };
        let newer = |b: &mut Vec<u8>| {
            append(b, INSERT, b"challenges", b"a", Some(b"2"));
            append(b, REMOVE, b"challenges", b"b", None);
            append(b, INSERT, b"policies", b"p", Some(b"x"));
        };
        segment(&segments, 7, older);
        segment(&segments, 8, |b| {
            newer(b);
            let cut = b.len();
            append(b, INSERT, b"challenges", b"a", Some(b"never acknowledged"));
            b.truncate(cut + 5);
        });

        let db = open_db(dir.path());
        let (next, replayed) = recover(&db, &segments).unwrap();
        assert_eq!((next, replayed), (9, 5));
        assert!(segments.list().unwrap().is_empty());
        assert_eq!(segments.spares().unwrap(), [7, 8], "kept for reuse");
        let challenges = db.open_tree("challenges").unwrap();
        assert_eq!(challenges.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(challenges.get("b").unwrap(), None);
        let policies = db.open_tree("policies").unwrap();
        assert_eq!(policies.get("p").unwrap().as_deref(), Some(&b"x"[..]));

        // Replaying the same records once more, as after a crash during the replay,
        // changes nothing; the new segments reuse the spares, whose old records are
        // not read as theirs.
        segment(&segments, 9, older);
        segment(&segments, 10, newer);
        assert!(segments.spares().unwrap().is_empty());
        assert_eq!(recover(&db, &segments).unwrap(), (11, 5));
        assert_eq!(challenges.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(challenges.get("b").unwrap(), None);

        // A segment that reuses a spare and holds nothing yet replays nothing.
        Writer::create(&segments, 11).unwrap();
        assert_eq!(recover(&db, &segments).unwrap(), (12, 0));
        // Segment numbers keep growing once every segment is retired.
        assert!(segments.list().unwrap().is_empty());
        assert_eq!(recover(&db, &segments).unwrap(), (12, 0));
    }

    #[test]
    fn a_segment_without_its_end_record_before_the_last_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path(), false).unwrap();
        segment(&segments, 1, |b| {
            append(b, INSERT, b"challenges", b"a", Some(b"1"));
        });
        Writer::create(&segments, 2).unwrap();
        let db = open_db(dir.path());
        assert!(matches!(
            recover(&db, &segments),
            Err(StoreError::Format(_))
        ));
        assert_eq!(segments.list().unwrap(), [1, 2], "nothing is retired");
    }

    #[test]
    fn a_segment_is_zero_filled_ahead_of_its_records_and_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path(), false).unwrap();
        let mut writer = Writer::create(&segments, 1).unwrap();
        let mut first = Vec::new();
        append(&mut first, INSERT, b"t", b"k", Some(&[7; 100]));
        writer.write_durably(&mut first).unwrap();
        let len = std::fs::metadata(segments.path(1)).unwrap().len();
        assert_eq!(len, GROWTH);
        let mut second = Vec::new();
        append(&mut second, INSERT, b"t", b"k2", Some(&[8; 100]));
        writer.write_durably(&mut second).unwrap();
        assert_eq!(std::fs::metadata(segments.path(1)).unwrap().len(), len);
        let bytes = std::fs::read(segments.path(1)).unwrap();
        assert_eq!(records(&bytes, 1).0.len(), 2);
    }

    #[test]
    fn logged_writes_are_recorded_in_the_order_sled_applied_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let log = Arc::new(Log::default());
        let tree = Tree::open(&db, "factors", &log).unwrap();
        tree.insert("k", "1").unwrap();
        assert!(tree
            .compare_and_swap("k", Some("1"), Some("2"))
            .unwrap()
            .is_ok());
        assert!(tree
            .compare_and_swap("k", Some("1"), Some("3"))
            .unwrap()
            .is_err());
        assert_eq!(tree.remove("missing").unwrap(), None);
        tree.remove("k").unwrap();
        let mut bytes = Vec::new();
        log.take(&mut bytes);
        seal(&mut bytes, 1);
        let (read, _) = records(&bytes, 1);
        let values: Vec<_> = read.iter().map(|r| (r.key, r.value)).collect();
        assert_eq!(
            values,
            [
                (&b"k"[..], Some(&b"1"[..])),
                (&b"k"[..], Some(&b"2"[..])),
                (&b"k"[..], None)
            ]
        );
    }
}
