//! The guest's stdout and stderr: captured into memory for the run's report,
//! up to a cap. Output past the cap is counted and dropped, never an error, so
//! a chatty guest cannot fail (or flood) the host by printing.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A capped in-memory sink shared between the WASI context and the runner.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    /// A sink keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Arc::default(),
        }
    }

    fn append(&self, data: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(c.bytes.len());
        let kept = data.len().min(room);
        c.bytes.extend_from_slice(&data[..kept]);
        c.dropped += (data.len() - kept) as u64;
    }

    /// The text kept (lossy UTF-8) and the number of bytes dropped.
    pub fn take(&self) -> (String, u64) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&c.bytes).into_owned();
        let dropped = c.dropped;
        *c = Captured::default();
        (text, dropped)
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a full buffer: what is over the cap is dropped.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let out = CappedOutput::new(4);
        out.append(b"abc");
        out.append(b"def");
        assert_eq!(out.take(), ("abcd".to_string(), 2));
    }
}
