//! How a call that did not return ended: the guest's own failure (a trap,
//! its deadline, its memory cap) becomes a [`RunEnd`]; the host's failure
//! to instantiate is a host failure, never recorded as the guest's trap.

use std::time::Duration;

use wasmtime::Trap;

use super::state::RunState;
use crate::runs::RunEnd;

/// How a failed instantiation ended the run. The guest's own doing (over
/// its memory cap, a trap in a start function) ends it like a failed call;
/// anything else, such as the instance pool being exhausted because the
/// process runs as many instances as it was sized for, is the host's failure:
/// severity `retry`, never recorded as the guest's trap.
pub(super) fn instantiation_failure(
    error: wasmtime::Error,
    state: &RunState,
    memory_bytes: u64,
    timeout: Duration,
) -> RunEnd {
    if state.limiter.exceeded || error.downcast_ref::<Trap>().is_some() {
        return classify(error, state, memory_bytes, timeout);
    }
    RunEnd::HostFailure {
        message: format!("cannot instantiate the component: {error:#}"),
    }
}

/// Turns a failed call into the way the run ended.
pub(super) fn classify(
    error: wasmtime::Error,
    state: &RunState,
    memory_bytes: u64,
    timeout: Duration,
) -> RunEnd {
    if state.limiter.exceeded {
        return RunEnd::MemoryLimit {
            limit_bytes: memory_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return RunEnd::TimedOut {
            after_secs: timeout.as_secs() as u32,
        };
    }
    RunEnd::Trapped {
        message: trap_message(&error),
    }
}

/// The error and its cause chain (the guest's wasm backtrace is one link),
/// laid out like anyhow's `{:?}` but without the host's own stack: that is
/// the host's internals, not the guest's failure, and resolving it (when
/// `RUST_BACKTRACE` is set) would cost every trap ~200 MB of host memory
/// for symbols.
fn trap_message(error: &wasmtime::Error) -> String {
    let mut text = error.to_string();
    let mut causes = error.chain().skip(1).peekable();
    if causes.peek().is_some() {
        text.push_str("\n\nCaused by:");
        for (i, cause) in causes.enumerate() {
            let cause = cause.to_string().replace('\n', "\n       ");
            text.push_str(&format!("\n    {i}: {cause}"));
        }
    }
    text.trim_end().to_string()
}
