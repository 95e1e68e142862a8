//! Artifacts written in chunks: an [`ArtifactWriter`] is a buffered
//! `std::io::Write`, so a feed of any size is produced with `write!` while
//! the guest holds only one chunk.

use crate::Failure;
use crate::bindings::airlock::connector::artifacts::{self as wit, ArtifactError};

/// Bytes buffered before they are handed to the host.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// One artifact being written by this run; published when the run ends
/// `ok` or `info`.
pub struct ArtifactWriter {
    name: String,
    buffer: Vec<u8>,
    written: u64,
}

impl ArtifactWriter {
    /// Begins a new version of `name`, served as `content_type`.
    pub fn begin(name: &str, content_type: &str) -> Result<Self, Failure> {
        wit::begin(name, content_type).map_err(failure)?;
        Ok(Self {
            name: name.to_string(),
            buffer: Vec::with_capacity(CHUNK_BYTES),
            written: 0,
        })
    }

    /// Bytes written so far (buffered included).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// True before anything was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Hands the buffered bytes to the host and returns the artifact's size.
    pub fn finish(mut self) -> Result<u64, Failure> {
        self.flush_chunk()?;
        Ok(self.written)
    }

    /// Drops what this run wrote to the artifact; the published one stays.
    pub fn discard(self) -> Result<(), Failure> {
        wit::discard(&self.name).map_err(failure)
    }

    fn flush_chunk(&mut self) -> Result<(), Failure> {
        if !self.buffer.is_empty() {
            wit::append(&self.name, &self.buffer).map_err(failure)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

impl std::io::Write for ArtifactWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush_chunk().map_err(io_error)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_chunk().map_err(io_error)
    }
}

fn io_error(failure: Failure) -> std::io::Error {
    std::io::Error::other(failure.message().to_string())
}

/// An artifacts error as a run failure.
pub fn failure(error: ArtifactError) -> Failure {
    match error {
        ArtifactError::Unavailable(m) => Failure::retry(format!("artifacts unavailable: {m}")),
        ArtifactError::InvalidName(m) => Failure::error(format!("invalid artifact name: {m}")),
        ArtifactError::InvalidArgument(m) => Failure::error(format!("artifact: {m}")),
        ArtifactError::QuotaExceeded(m) => Failure::error(format!("artifact quota: {m}")),
        ArtifactError::NotAllowed(m) => Failure::error(format!("artifacts not allowed: {m}")),
    }
}
