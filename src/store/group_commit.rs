//! `GroupCommit`: durability without a disk flush per request. Writers write through the
//! logged trees (which apply each write to sled and record it in the log's buffer; see
//! [`super::log`]), then wait here. One flusher thread appends the buffer to the log's
//! current segment and syncs it, one sync at a time; every writer that arrived
//! while a sync was running rides the next one. There is no timer delay: an idle store
//! syncs the moment the first writer arrives.
//!
//! Why it is correct: a writer registers only after its write returned, and the flusher
//! takes the batch before it takes the buffer, so each sync covers every write of the
//! writers in its batch.
//!
//! The same thread starts a new segment once the current one is older than the
//! checkpoint interval or larger than the segment size, and hands the older one to the
//! checkpoint thread, which flushes sled and deletes it. Neither waits for the other.
//!
//! A failed sync (or checkpoint) is final: a write may have reached sled but not the
//! log, so the first failure is kept: every waiter of that batch and every later one is
//! told, [`GroupCommit::failure`] says why, and `/readyz` answers 503 so that an
//! orchestrator restarts the node, which replays the log. Nothing a failed sync covered
//! was acknowledged.

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::log::{self, Log, Segments, Writer};
use super::StoreError;
use crate::metrics as m;

/// When the log starts a new segment, and so when sled is checkpointed.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// A segment older than this is closed and checkpointed at the next sync.
    pub interval: Duration,
    /// A segment larger than this is closed and checkpointed at the next sync.
    pub segment_bytes: u64,
    /// Sync the log with `fdatasync` (also flushing the device's write cache) rather
    /// than `sync_file_range`.
    pub fdatasync: bool,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints {
            interval: Duration::from_secs(1),
            segment_bytes: 16 << 20,
            fdatasync: false,
        }
    }
}

/// What the flusher thread owns.
struct Flusher {
    db: sled::Db,
    log: Arc<Log>,
    segments: Arc<Segments>,
    writer: Writer,
    checkpoints: Checkpoints,
    /// When the current segment was begun.
    segment_started: Instant,
    /// The current segment has its end record: the next write needs a new one.
    ended: bool,
}

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    closed: bool,
    /// Tests: the next flushes fail as if the disk did.
    #[cfg(test)]
    inject_failure: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

pub struct GroupCommit {
    shared: std::sync::Arc<Shared>,
    log: Arc<Log>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    pub(super) fn start(
        db: sled::Db,
        log: Arc<Log>,
        segments: Segments,
        writer: Writer,
        checkpoints: Checkpoints,
    ) -> Self {
        let shared = std::sync::Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let flusher = Flusher {
            db,
            log: log.clone(),
            segments: Arc::new(segments),
            writer,
            checkpoints,
            segment_started: Instant::now(),
            ended: false,
        };
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || flusher.run(worker))
            .expect("spawn the group-commit thread");
        GroupCommit {
            shared,
            log,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Resolves once a flush that started after this call has finished.
    pub async fn wait(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.shared.queue.lock().expect("group-commit lock");
            if queue.closed {
                return Err(StoreError::Closed);
            }
            if let Some(reason) = self.log.failure() {
                return Err(StoreError::Io(std::io::Error::other(reason.to_string())));
            }
            queue.waiters.push(tx);
        }
        self.shared.wake.notify_one();
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Io(std::io::Error::other(e))),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl GroupCommit {
    /// Why the store stopped accepting writes, once a flush failed.
    pub fn failure(&self) -> Option<String> {
        self.log.failure().map(str::to_string)
    }

    /// Makes every later flush fail, as a full or broken disk would.
    #[cfg(test)]
    pub fn inject_failure(&self) {
        self.shared
            .queue
            .lock()
            .expect("group-commit lock")
            .inject_failure = true;
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("group-commit lock").closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().expect("group-commit lock").take() {
            let _ = thread.join();
        }
    }
}

impl Flusher {
    fn run(mut self, shared: Arc<Shared>) {
        let (checkpoint, closed_segments) = mpsc::channel::<u64>();
        let checkpointer = {
            let (db, segments, log) = (self.db.clone(), self.segments.clone(), self.log.clone());
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || checkpointer(db, &segments, closed_segments, &log))
                .expect("spawn the checkpoint thread")
        };
        let mut records = Vec::new();
        loop {
            let batch = {
                let mut queue = shared.queue.lock().expect("group-commit lock");
                while queue.waiters.is_empty() && !queue.closed {
                    queue = shared.wake.wait(queue).expect("group-commit lock");
                }
                if queue.waiters.is_empty() && queue.closed {
                    break;
                }
                // Give writers that are already running a chance to join this sync: a
                // yield, not a timer, so an idle store still syncs at once.
                drop(queue);
                std::thread::yield_now();
                let mut queue = shared.queue.lock().expect("group-commit lock");
                let batch = std::mem::take(&mut queue.waiters);
                if let Some(reason) = self.log.failure() {
                    for waiter in batch {
                        let _ = waiter.send(Err(reason.to_string()));
                    }
                    continue;
                }
                #[cfg(test)]
                let injected = queue.inject_failure;
                #[cfg(not(test))]
                let injected = false;
                (batch, injected)
            };
            let (batch, injected) = batch;
            let started = Instant::now();
            self.log.take(&mut records);
            let result = if injected {
                Err("injected flush failure".to_string())
            } else {
                self.write(&mut records, &checkpoint)
            };
            metrics::histogram!(m::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
            metrics::histogram!(m::FLUSH_BATCH).record(batch.len() as f64);
            if let Err(e) = &result {
                self.log.fail(e);
            }
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
            if result.is_ok() && self.ended {
                if let Err(e) = self.next_segment(&checkpoint) {
                    self.log.fail(&e);
                }
            }
        }
        drop(checkpoint);
        let _ = checkpointer.join();
        if self.log.failure().is_none() {
            // A clean stop leaves sled holding everything and no log to replay.
            self.log.take(&mut records);
            let closed = !self.ended
                && self.writer.write_durably(&mut records).is_ok()
                && log::keep_next(&self.db, self.writer.number + 1).is_ok()
                && self.db.flush().is_ok()
                && self.segments.retire_through(self.writer.number).is_ok();
            if !closed {
                tracing::warn!("the log could not be checkpointed at shutdown; it is replayed at the next start");
            }
        }
    }
}

impl Flusher {
    /// Makes `records` durable in the current segment. A segment they would overfill is
    /// ended first; one older than the checkpoint interval is ended with them (and
    /// [`Flusher::next_segment`] goes on after the waiters are told).
    fn write(
        &mut self,
        records: &mut Vec<u8>,
        checkpoint: &mpsc::Sender<u64>,
    ) -> Result<(), String> {
        let position = self.writer.position;
        if position > 0
            && position + (records.len() + log::END_RECORD) as u64 > self.checkpoints.segment_bytes
        {
            let mut end = Vec::new();
            log::append_end(&mut end);
            self.writer
                .write_durably(&mut end)
                .map_err(|e| e.to_string())?;
            self.ended = true;
            self.next_segment(checkpoint)?;
        }
        let due = self.segment_started.elapsed() >= self.checkpoints.interval
            && self.writer.position + records.len() as u64 > 0;
        if due {
            log::append_end(records);
        }
        self.writer
            .write_durably(records)
            .map_err(|e| e.to_string())?;
        self.ended = due;
        Ok(())
    }

    /// Goes on in a new segment after the current one was ended, and has the ended one
    /// checkpointed.
    fn next_segment(&mut self, checkpoint: &mpsc::Sender<u64>) -> Result<(), String> {
        let next =
            Writer::create(&self.segments, self.writer.number + 1).map_err(|e| e.to_string())?;
        let ended = std::mem::replace(&mut self.writer, next);
        self.ended = false;
        self.segment_started = Instant::now();
        let _ = checkpoint.send(ended.number);
        Ok(())
    }
}

/// Flushes sled for each segment the flusher closed, then deletes the closed segments.
/// Segments closed while a flush ran are covered by the next one.
fn checkpointer(
    db: sled::Db,
    segments: &Segments,
    closed_segments: mpsc::Receiver<u64>,
    log: &Log,
) {
    while let Ok(mut last) = closed_segments.recv() {
        while let Ok(later) = closed_segments.try_recv() {
            last = later;
        }
        let started = Instant::now();
        let done = db
            .flush()
            .map_err(StoreError::from)
            .and_then(|_| segments.retire_through(last));
        metrics::histogram!(m::CHECKPOINT_SECONDS).record(started.elapsed().as_secs_f64());
        if let Err(e) = done {
            log.fail(&e.to_string());
            return;
        }
    }
}
