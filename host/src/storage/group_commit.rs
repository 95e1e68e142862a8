//! Group commit: writes from many threads share one SQLite transaction, and
//! so one `fsync` of the write-ahead log.
//!
//! With `synchronous=FULL` every commit waits for the disk. A `serve` with
//! eight runs at once recorded each run in its own transaction and claimed
//! each queued run in another, so the disk's flush latency, not the CPU,
//! set the scheduler's pace. Here a writer queues its work; whichever
//! writer finds nobody committing becomes the leader, takes every write
//! queued so far, runs each inside its own savepoint of one transaction and
//! commits them together. The others wait for their own result, which is
//! given only once the commit is durable: each caller still sees "my write
//! is on disk" or an error, never less.
//!
//! A write that fails rolls back to its savepoint and fails alone; a commit
//! that fails fails every write in it. A leader leads one batch (its own
//! write is in it), then hands over: no caller waits behind an unbounded
//! stream of others' writes.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use super::StorageError;

/// One queued write: given the transaction (or why there is none), it does
/// its work and returns whether it succeeded, and how to hand its caller the
/// result once the commit's outcome is known.
type Job = Box<dyn FnOnce(Result<&Connection, &str>) -> (bool, Deliver) + Send>;

/// Hands a write's result to its caller, given why the commit failed, if
/// it did.
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// Writes waiting to be committed, and whether a leader is committing.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<Queue>,
    /// Signalled when a leader hands over.
    handed_over: Condvar,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Job>,
    leading: bool,
}

impl GroupCommit {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` in a transaction shared with the writes queued at the same
    /// time, and returns its result once that transaction is committed. The
    /// connection is `conn`, locked only while a batch is written.
    pub(super) fn write<T, F>(&self, conn: &Mutex<Connection>, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let (sender, receiver) = sync_channel(1);
        let mut queue = self.queue();
        queue.pending.push(job(work, sender));
        loop {
            if let Some(result) = delivered(&receiver) {
                return result;
            }
            if !queue.leading {
                queue.leading = true;
                let batch = take_batch(&mut queue.pending);
                drop(queue);
                self.lead(conn, batch);
                queue = self.queue();
                continue;
            }
            queue = self
                .handed_over
                .wait(queue)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Commits `batch`, then hands over to the next leader, even if a write
    /// panicked (its callers then see their write as lost).
    fn lead(&self, conn: &Mutex<Connection>, batch: Vec<Job>) {
        struct HandOver<'a>(&'a GroupCommit);
        impl Drop for HandOver<'_> {
            fn drop(&mut self) {
                self.0.queue().leading = false;
                self.0.handed_over.notify_all();
            }
        }
        let _hand_over = HandOver(self);
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        commit_batch(&mut conn, batch);
    }
}

/// The result handed to `receiver`, if it has come (a write whose leader
/// panicked comes back as an error).
fn delivered<T>(receiver: &Receiver<Result<T, StorageError>>) -> Option<Result<T, StorageError>> {
    match receiver.try_recv() {
        Ok(result) => Some(result),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(Err(lost("the write's commit panicked"))),
    }
}

fn lost(why: &str) -> StorageError {
    StorageError::Database(why.to_string().into())
}

/// At most [`MAX_BATCH`] of the writes queued, oldest first.
fn take_batch(pending: &mut Vec<Job>) -> Vec<Job> {
    let n = pending.len().min(MAX_BATCH);
    pending.drain(..n).collect()
}

/// `work` as a queued write whose result goes to `sender`.
fn job<T, F>(work: F, sender: SyncSender<Result<T, StorageError>>) -> Job
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
{
    Box::new(move |conn| {
        let result = match conn {
            Ok(conn) => work(conn),
            Err(why) => Err(lost(why)),
        };
        let ok = result.is_ok();
        let deliver: Deliver = Box::new(move |commit_failed| {
            let result = match (result, commit_failed) {
                (Ok(_), Some(why)) => Err(lost(why)),
                (result, _) => result,
            };
            // The caller waits for this; it cannot have gone.
            let _ = sender.send(result);
        });
        (ok, deliver)
    })
}

/// Runs each write of `batch` in one transaction (each in a savepoint when
/// there are several, so one that fails is undone alone), commits, then
/// delivers every result.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>) {
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let why = format!("cannot begin the transaction: {e}");
            for job in batch {
                let (_, deliver) = job(Err(&why));
                deliver(None);
            }
            return;
        }
    };
    let alone = batch.len() == 1;
    let mut delivers: Vec<(Deliver, Option<String>)> = Vec::with_capacity(batch.len());
    let mut any_ok = false;
    for job in batch {
        if alone {
            let (ok, deliver) = job(Ok(&tx));
            any_ok |= ok;
            delivers.push((deliver, None));
            continue;
        }
        match tx.savepoint() {
            Ok(mut savepoint) => {
                let (ok, deliver) = job(Ok(&savepoint));
                let released = if ok {
                    savepoint.commit()
                } else {
                    savepoint.rollback().and_then(|()| savepoint.commit())
                };
                let failed = released
                    .err()
                    .map(|e| format!("cannot end the write's savepoint: {e}"));
                any_ok |= ok && failed.is_none();
                delivers.push((deliver, failed));
            }
            Err(e) => {
                let why = format!("cannot start the write's savepoint: {e}");
                let (_, deliver) = job(Err(&why));
                delivers.push((deliver, None));
            }
        }
    }
    // Nothing to keep: roll back rather than sync an empty commit.
    let committed = if any_ok {
        tx.commit().map_err(|e| format!("the commit failed: {e}"))
    } else {
        Ok(())
    };
    for (deliver, failed) in delivers {
        match (&committed, failed) {
            (Err(why), _) => deliver(Some(why)),
            (Ok(()), Some(why)) => deliver(Some(&why)),
            (Ok(()), None) => deliver(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn table() -> Arc<Mutex<Connection>> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        Arc::new(Mutex::new(conn))
    }

    fn count(conn: &Mutex<Connection>) -> i64 {
        // A write that panicked poisoned the lock; the store ignores that.
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn writes_from_many_threads_are_all_committed_and_each_gets_its_own_result() {
        let (conn, group) = (table(), Arc::new(GroupCommit::default()));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (conn, group, start) = (conn.clone(), group.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    group.write(&conn, move |c| {
                        c.execute("INSERT INTO t VALUES (?1, ?2)", (format!("k{i}"), i))?;
                        Ok(i * 10)
                    })
                })
            })
            .collect();
        let results: Vec<i64> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert_eq!(results, (0..16).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(count(&conn), 16);
    }

    #[test]
    fn a_failing_write_is_undone_alone_and_the_others_in_its_batch_commit() {
        let conn = table();
        let group = GroupCommit::default();
        // Queue three writes by hand so that they share one batch.
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..3).map(|_| sync_channel(1)).unzip();
        let mut batch = Vec::new();
        for (i, sender) in senders.into_iter().enumerate() {
            batch.push(job(
                move |c: &Connection| {
                    c.execute("INSERT INTO t VALUES (?1, 1)", [format!("a{i}")])?;
                    // The second write inserts a row, then fails: its row
                    // must go with it.
                    if i == 1 {
                        c.execute("INSERT INTO t VALUES ('a0', 1)", [])?;
                    }
                    Ok(i)
                },
                sender,
            ));
        }
        group.lead(&conn, batch);
        let results: Vec<_> = receivers.iter().map(|r| r.recv().unwrap()).collect();
        assert!(matches!(results[0], Ok(0)));
        assert!(matches!(results[1], Err(StorageError::Database(_))));
        assert!(matches!(results[2], Ok(2)));
        let keys: Vec<String> = {
            let c = conn.lock().unwrap();
            let mut stmt = c.prepare("SELECT k FROM t ORDER BY k").unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(keys, ["a0", "a2"]);
    }

    #[test]
    fn a_write_that_panics_loses_only_its_batch_and_the_next_writes_go_on() {
        let (conn, group) = (table(), Arc::new(GroupCommit::default()));
        let panicked = {
            let (conn, group) = (conn.clone(), group.clone());
            std::thread::spawn(move || {
                group.write(&conn, |c: &Connection| -> Result<(), StorageError> {
                    c.execute("INSERT INTO t VALUES ('p', 1)", [])?;
                    panic!("a bug in a write");
                })
            })
            .join()
        };
        assert!(panicked.is_err(), "the panic reaches the writer's caller");
        group
            .write(&conn, |c| {
                c.execute("INSERT INTO t VALUES ('after', 1)", [])?;
                Ok(())
            })
            .expect("a later write is led and committed");
        assert_eq!(count(&conn), 1, "the panicked write was rolled back");
    }
}
