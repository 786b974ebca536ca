//! `GroupCommit`: durability without a disk flush per request. Writers insert into sled,
//! then wait here. One flusher thread runs one `flush` at a time; every writer that
//! arrived while a flush was running rides the next one. There is no timer delay: an
//! idle store flushes the moment the first writer arrives.
//!
//! Why it is correct: a writer registers only after its insert returned, and the flusher
//! takes the batch before it calls `flush`, so each flush covers every insert of the
//! writers in its batch.

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
            std::mem::take(&mut queue.waiters)
        };
        let started = Instant::now();
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        metrics::histogram!(m::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(m::FLUSH_BATCH).record(batch.len() as f64);
        if let Err(e) = &result {
            tracing::error!(error = %e, "snapshot flush failed");
        }
        for waiter in batch {
            let _ = waiter.send(result.clone());
        }
    }
    let _ = db.flush();
}
