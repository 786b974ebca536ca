//! `GroupCommit`: durability without a disk flush per request. Writers insert into sled,
//! then wait here. One flusher thread runs one `flush` at a time; every writer that
//! arrived while a flush was running rides the next one. There is no timer delay: an
//! idle store flushes the moment the first writer arrives.
//!
//! Why it is correct: a writer registers only after its insert returned, and the flusher
//! takes the batch before it calls `flush`, so each flush covers every insert of the
//! writers in its batch.
//!
//! A failed flush is final. sled makes an I/O error sticky (every later write fails
//! until the database is reopened), so the first failure is kept: every waiter of that
//! batch and every later one is told, [`GroupCommit::failure`] says why, and `/readyz`
//! answers 503 so that an orchestrator restarts the node. Nothing a failed flush covered
//! was acknowledged.

use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::StoreError;
use crate::metrics as m;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    closed: bool,
    /// The first flush failure; once set, nothing is flushed again.
    failed: Option<String>,
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
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    pub fn start(db: sled::Db) -> Self {
        let shared = std::sync::Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || flusher(db, worker))
            .expect("spawn the group-commit thread");
        GroupCommit {
            shared,
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
            if let Some(reason) = &queue.failed {
                return Err(StoreError::Io(std::io::Error::other(reason.clone())));
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
        self.shared
            .queue
            .lock()
            .expect("group-commit lock")
            .failed
            .clone()
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

fn flusher(db: sled::Db, shared: std::sync::Arc<Shared>) {
    loop {
        let batch = {
            let mut queue = shared.queue.lock().expect("group-commit lock");
            while queue.waiters.is_empty() && !queue.closed {
                queue = shared.wake.wait(queue).expect("group-commit lock");
            }
            if queue.waiters.is_empty() && queue.closed {
                break;
            }
            // Give writers that are already running a chance to join this flush: a
            // yield, not a timer, so an idle store still flushes at once.
            drop(queue);
            std::thread::yield_now();
            let mut queue = shared.queue.lock().expect("group-commit lock");
            let batch = std::mem::take(&mut queue.waiters);
            if let Some(reason) = &queue.failed {
                for waiter in batch {
                    let _ = waiter.send(Err(reason.clone()));
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
        let result = if injected {
            Err("injected flush failure".to_string())
        } else {
            db.flush().map(|_| ()).map_err(|e| e.to_string())
        };
        metrics::histogram!(m::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(m::FLUSH_BATCH).record(batch.len() as f64);
        if let Err(e) = &result {
            tracing::error!(error = %e, "snapshot flush failed: this node accepts no more writes and reports not ready until it is restarted with a working data directory");
            shared.queue.lock().expect("group-commit lock").failed = Some(e.clone());
        }
        for waiter in batch {
            let _ = waiter.send(result.clone());
        }
    }
    let failed = shared
        .queue
        .lock()
        .expect("group-commit lock")
        .failed
        .is_some();
    if !failed {
        let _ = db.flush();
    }
}
