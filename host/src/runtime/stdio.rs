//! The guest's stdout and stderr: captured into memory for the run's report,
//! up to a cap. Output past the cap is counted and dropped, never an error, so
//! a chatty guest cannot fail (or flood) the host by printing.
//!
//! The installation's secrets are redacted before the cap is applied, over the
//! whole stream rather than each write: a secret written byte by byte, or
//! straddling the cap, is caught whole. To make that possible a little more
//! than the cap is kept until the end (as much as the longest encoded secret).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::config::Redactor;

#[derive(Debug, Default)]
struct Captured {
    /// The start of the stream: the cap plus the redactor's reach.
    bytes: Vec<u8>,
    /// Everything written, in bytes.
    written: u64,
}

/// A capped, redacting in-memory sink shared between the WASI context and
/// the runner.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    cap: usize,
    redactor: Redactor,
    inner: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    /// A sink keeping at most `cap` bytes, with nothing to redact.
    pub fn new(cap: usize) -> Self {
        Self::redacting(cap, Redactor::default())
    }

    /// A sink keeping at most `cap` bytes of the stream with the secrets of
    /// `redactor` redacted.
    pub fn redacting(cap: usize, redactor: Redactor) -> Self {
        Self {
            cap,
            redactor,
            inner: Arc::default(),
        }
    }

    /// Bytes kept until [`take`](Self::take): the cap, plus room for a
    /// secret that starts before the cap to be seen whole.
    fn window(&self) -> usize {
        match self.redactor.reach() {
            0 => self.cap,
            reach => self.cap.saturating_add(reach + 4),
        }
    }

    fn append(&self, data: &[u8]) {
        let window = self.window();
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = window.saturating_sub(c.bytes.len());
        c.bytes.extend_from_slice(&data[..data.len().min(room)]);
        c.written += data.len() as u64;
    }

    /// The text kept (lossy UTF-8, secrets redacted, at most the cap) and the
    /// number of bytes written past the cap.
    pub fn take(&self) -> (String, u64) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&c.bytes);
        let kept = self.redactor.redact_capped(&text, self.cap);
        let dropped = c.written.saturating_sub(self.cap as u64);
        *c = Captured::default();
        (kept, dropped)
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

    fn captured(cap: usize, writes: &[&[u8]]) -> (String, u64) {
        let out = CappedOutput::redacting(cap, Redactor::new(["hunter2!"]));
        for w in writes {
            out.append(w);
        }
        out.take()
    }

    #[test]
    fn a_secret_is_redacted_across_writes_and_before_the_cap() {
        let bytes: Vec<&[u8]> = b"pw=hunter2!;".chunks(1).collect();
        assert_eq!(captured(100, &bytes), ("pw=[redacted];".to_string(), 0));
        for cap in 0..12 {
            let (kept, dropped) = captured(cap, &[b"0123", b"hunt", b"er2!", b"tail"]);
            assert!(!kept.contains("hu"), "cap {cap}: {kept:?}");
            assert!(kept.len() <= cap);
            assert_eq!(dropped, 16 - cap as u64);
        }
        let (kept, _) = captured(7, &[b"0123 aHVudGVy", b"MiE= tail"]);
        assert_eq!(kept, "0123 [r", "base64 across the cap");
    }
}
