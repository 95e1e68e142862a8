//! Blocking work called from async code: a store call, a disk read, a hash.
//! Such work must not hold a tokio worker that guests and the scheduler
//! need; on a multi-threaded runtime the calling worker can hand its other
//! tasks on and block in place, which costs far less than a round trip
//! through the blocking pool (two thread hand-offs, about 60 µs on this
//! project's machine kind).

/// Whether the calling thread may block in place
/// (`tokio::task::block_in_place`): it is a worker of a multi-threaded tokio
/// runtime, whose other tasks then move to another worker. Elsewhere
/// blocking work needs another way off the worker.
pub(crate) fn can_block_in_place() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Runs `work`, blocking in place if the caller is a worker of a
/// multi-threaded runtime; otherwise (no runtime, or a current-thread one,
/// where nothing else could run meanwhile anyway) just runs it.
pub(crate) fn in_place<T>(work: impl FnOnce() -> T) -> T {
    if can_block_in_place() {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Runs `work` off the tokio worker and waits for it: blocking in place on a
/// multi-threaded runtime, else on the blocking pool. An error only if the
/// work panicked on the pool (in place, a panic unwinds to the caller).
pub(crate) async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if can_block_in_place() {
        return Ok(tokio::task::block_in_place(work));
    }
    tokio::task::spawn_blocking(work).await
}
