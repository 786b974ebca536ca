//! The write-ahead log: what makes a write durable without a sled flush per request.
//!
//! Every write to a store tree goes through [`Tree`], which applies it to sled and appends
//! a record of it (the tree's name, the key, and the whole new value or its removal) to
//! an in-memory buffer, both under one lock, so that the log holds the writes in the
//! order sled applied them. The group-commit thread writes the buffer to the current
//! segment file and `fdatasync`s it; a write is durable once that returns.
//!
//! sled is written without a flush per request and checkpointed in the background: the
//! group-commit thread starts a new segment once the current one is old or large enough,
//! and the checkpoint thread then flushes sled, which covers every write recorded in the
//! older segments (each was applied to sled before its record was taken from the
//! buffer), and deletes them.
//!
//! At open, the segments left behind are replayed onto sled in order, then sled is
//! flushed and they are deleted. Records are whole values, so replaying one that sled
//! already holds changes nothing, and a crash at any point of a checkpoint (or of a
//! replay) leaves segments that replay to the same state. A record cut short by a crash
//! can only be at the end of the last segment, in a write that was never acknowledged;
//! it ends the replay.
//!
//! A segment is `<data_dir>/log/<number>.log`: records of `length u32 | crc32 u32 |
//! payload`, the payload `op u8 | tree length u16 | tree | key length u32 | key | value`
//! (all little-endian; the value only for an insert).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use sled::{CompareAndSwapError, IVec};

use super::StoreError;

const INSERT: u8 = 1;
const REMOVE: u8 = 2;
/// Bytes before a record's payload: its length and checksum.
const HEADER: usize = 8;

/// The records taken by no segment write yet, and the lock that orders writes.
#[derive(Default)]
pub struct Log {
    pending: Mutex<Vec<u8>>,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().expect("log lock")
    }

    /// Every record appended so far, leaving the buffer empty (its capacity kept).
    pub(super) fn take(&self, into: &mut Vec<u8>) {
        into.clear();
        std::mem::swap(&mut *self.lock(), into);
    }
}

fn append(buffer: &mut Vec<u8>, op: u8, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
    let value = value.unwrap_or_default();
    let length = 1 + 2 + tree.len() + 4 + key.len() + value.len();
    let start = buffer.len();
    buffer.reserve(HEADER + length);
    buffer.extend_from_slice(&(length as u32).to_le_bytes());
    buffer.extend_from_slice(&[0; 4]);
    buffer.push(op);
    buffer.extend_from_slice(&(tree.len() as u16).to_le_bytes());
    buffer.extend_from_slice(tree);
    buffer.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buffer.extend_from_slice(key);
    buffer.extend_from_slice(value);
    let crc = crc32fast::hash(&buffer[start + HEADER..]);
    buffer[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// One write read back from a segment.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    tree: &'a [u8],
    key: &'a [u8],
    /// `None`: the key was removed.
    value: Option<&'a [u8]>,
}

/// The records of a segment's bytes, in order, up to the first one that is incomplete
/// or damaged; the second value says whether the bytes ended there cleanly.
fn records(bytes: &[u8]) -> (Vec<Record<'_>>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(record) = record_at(bytes, at) else {
            return (out, false);
        };
        out.push(record.0);
        at = record.1;
    }
    (out, true)
}

fn record_at(bytes: &[u8], at: usize) -> Option<(Record<'_>, usize)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let length = u32_at(at)? as usize;
    let crc = u32_at(at + 4)?;
    let payload = bytes.get(at + HEADER..at + HEADER + length)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let op = *payload.first()?;
    let tree_len = u16::from_le_bytes(payload.get(1..3)?.try_into().ok()?) as usize;
    let tree = payload.get(3..3 + tree_len)?;
    let rest = payload.get(3 + tree_len..)?;
    let key_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + key_len)?;
    let value = rest.get(4 + key_len..)?;
    let value = match op {
        INSERT => Some(value),
        REMOVE if value.is_empty() => None,
        _ => return None,
    };
    Some((Record { tree, key, value }, at + HEADER + length))
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
        let old = self.inner.insert(key, value.clone())?;
        append(&mut log, INSERT, &self.name, key, Some(&value));
        Ok(old)
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        let mut log = self.log.lock();
        let old = self.inner.remove(key)?;
        if old.is_some() {
            append(&mut log, REMOVE, &self.name, key, None);
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
        let swapped = self.inner.compare_and_swap(key, old, new.clone())?;
        if swapped.is_ok() {
            match &new {
                Some(value) => append(&mut log, INSERT, &self.name, key, Some(value)),
                None => append(&mut log, REMOVE, &self.name, key, None),
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

/// The segment files of a data directory, oldest first.
pub(super) struct Segments {
    dir: PathBuf,
}

impl Segments {
    pub(super) fn new(data_dir: &Path) -> Result<Segments, StoreError> {
        let dir = data_dir.join("log");
        std::fs::create_dir_all(&dir)?;
        Ok(Segments { dir })
    }

    pub(super) fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}.log"))
    }

    /// The numbers of the segments on disk, in order.
    pub(super) fn list(&self) -> Result<Vec<u64>, StoreError> {
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            numbers.push(number);
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// A new, empty segment, its directory entry durable.
    pub(super) fn create(&self, number: u64) -> Result<File, StoreError> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.path(number))?;
        self.sync_dir()?;
        Ok(file)
    }

    /// Deletes the segments numbered up to `last`, once sled holds everything in them.
    pub(super) fn remove_through(&self, last: u64) -> Result<(), StoreError> {
        for number in self.list()?.into_iter().take_while(|&n| n <= last) {
            std::fs::remove_file(self.path(number))?;
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Replays the segments on disk onto `db`, flushes it and deletes them; the number the
/// next segment takes and the records replayed.
pub(super) fn recover(db: &sled::Db, segments: &Segments) -> Result<(u64, usize), StoreError> {
    let numbers = segments.list()?;
    let mut replayed = 0;
    let mut trees: Vec<(Vec<u8>, sled::Tree)> = Vec::new();
    for (i, &number) in numbers.iter().enumerate() {
        let mut bytes = Vec::new();
        File::open(segments.path(number))?.read_to_end(&mut bytes)?;
        let (records, clean) = records(&bytes);
        if !clean && i + 1 < numbers.len() {
            // Only the last segment can have been cut short: every earlier one was synced
            // whole before the next was started.
            return Err(StoreError::Format(format!(
                "log segment {} is damaged after {} records",
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
    db.flush()?;
    let next = numbers.last().map_or(1, |n| n + 1);
    if let Some(&last) = numbers.last() {
        segments.remove_through(last)?;
    }
    Ok((next, replayed))
}

/// The segment being written: the group-commit thread's end of the log.
pub(super) struct Writer {
    pub(super) number: u64,
    file: File,
    pub(super) bytes: u64,
}

impl Writer {
    pub(super) fn create(segments: &Segments, number: u64) -> Result<Writer, StoreError> {
        Ok(Writer {
            number,
            file: segments.create(number)?,
            bytes: 0,
        })
    }

    /// Appends `records` and makes them durable.
    pub(super) fn write_durably(&mut self, records: &[u8]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.file.write_all(records)?;
        self.file.sync_data()?;
        self.bytes += records.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_in_order_and_a_cut_or_damaged_tail_ends_them() {
        let mut bytes = Vec::new();
        append(&mut bytes, INSERT, b"challenges", b"k1", Some(b"v1"));
        append(&mut bytes, REMOVE, b"challenges", b"k0", None);
        append(&mut bytes, INSERT, b"factors", b"", Some(b""));
        let (read, clean) = records(&bytes);
        assert!(clean);
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
        while let Some((_, next)) = record_at(&bytes, at) {
            ends.push(next);
            at = next;
        }
        for cut in 1..bytes.len() {
            let (read, clean) = records(&bytes[..cut]);
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(read.len(), whole, "a cut at {cut} keeps the whole records");
            assert_eq!(clean, ends.contains(&cut), "a cut at {cut}");
        }
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let (read, clean) = records(&damaged);
        assert_eq!((read.len(), clean), (2, false));
    }

    fn open_db(dir: &Path) -> sled::Db {
        sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(None)
            .open()
            .unwrap()
    }

    #[test]
    fn recovery_replays_the_segments_in_order_and_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path()).unwrap();
        // As a crash in the middle of a checkpoint leaves them: an older segment that
        // sled may or may not hold yet, and the newer one being written.
        let mut older = Vec::new();
        append(&mut older, INSERT, b"challenges", b"a", Some(b"1"));
        append(&mut older, INSERT, b"challenges", b"b", Some(b"1"));
        let mut newer = Vec::new();
        append(&mut newer, INSERT, b"challenges", b"a", Some(b"2"));
        append(&mut newer, REMOVE, b"challenges", b"b", None);
        append(&mut newer, INSERT, b"policies", b"p", Some(b"x"));
        let cut = newer.len();
        append(
            &mut newer,
            INSERT,
            b"challenges",
            b"a",
            Some(b"never acknowledged"),
        );
        newer.truncate(cut + 5);
        Writer::create(&segments, 7)
            .unwrap()
            .write_durably(&older)
            .unwrap();
        Writer::create(&segments, 8)
            .unwrap()
            .write_durably(&newer)
            .unwrap();

        let db = open_db(dir.path());
        let (next, replayed) = recover(&db, &segments).unwrap();
        assert_eq!((next, replayed), (9, 5));
        assert!(segments.list().unwrap().is_empty());
        let challenges = db.open_tree("challenges").unwrap();
        assert_eq!(challenges.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(challenges.get("b").unwrap(), None);
        let policies = db.open_tree("policies").unwrap();
        assert_eq!(policies.get("p").unwrap().as_deref(), Some(&b"x"[..]));

        // Replaying the same records once more, as after a crash during the replay,
        // changes nothing.
        Writer::create(&segments, 9)
            .unwrap()
            .write_durably(&older)
            .unwrap();
        Writer::create(&segments, 10)
            .unwrap()
            .write_durably(&newer)
            .unwrap();
        assert_eq!(recover(&db, &segments).unwrap(), (11, 5));
        assert_eq!(challenges.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(challenges.get("b").unwrap(), None);
    }

    #[test]
    fn a_damaged_segment_before_the_last_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::new(dir.path()).unwrap();
        let mut bytes = Vec::new();
        append(&mut bytes, INSERT, b"challenges", b"a", Some(b"1"));
        bytes.truncate(bytes.len() - 1);
        Writer::create(&segments, 1)
            .unwrap()
            .write_durably(&bytes)
            .unwrap();
        Writer::create(&segments, 2).unwrap();
        let db = open_db(dir.path());
        assert!(matches!(
            recover(&db, &segments),
            Err(StoreError::Format(_))
        ));
        assert_eq!(segments.list().unwrap(), [1, 2], "nothing is deleted");
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
        let (read, clean) = records(&bytes);
        assert!(clean);
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
