//! WIT glue for `airlock:connector/artifacts`.

use super::ArtifactsCapability;
use crate::artifacts::ArtifactError;
use crate::runtime::bindings::airlock::connector::artifacts as wit;

type ArtifactsResult<T> = wasmtime::Result<Result<T, wit::ArtifactError>>;

fn guest_error(e: ArtifactError) -> wit::ArtifactError {
    match e {
        ArtifactError::InvalidName(m) => wit::ArtifactError::InvalidName(m),
        ArtifactError::InvalidArgument(m) => wit::ArtifactError::InvalidArgument(m),
        ArtifactError::QuotaExceeded(m) => wit::ArtifactError::QuotaExceeded(m),
        ArtifactError::NotAllowed(m) => wit::ArtifactError::NotAllowed(m),
        ArtifactError::Unavailable(m) => wit::ArtifactError::Unavailable(m),
    }
}

impl wit::Host for ArtifactsCapability {
    #[tracing::instrument(name = "artifacts.begin", level = "debug", skip_all)]
    async fn begin(&mut self, name: String, content_type: String) -> ArtifactsResult<()> {
        Ok(ArtifactsCapability::begin(self, &name, &content_type)
            .await
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "artifacts.append", level = "debug", skip_all)]
    async fn append(&mut self, name: String, chunk: Vec<u8>) -> ArtifactsResult<()> {
        Ok(ArtifactsCapability::append(self, &name, chunk)
            .await
            .map_err(guest_error))
    }

    #[tracing::instrument(name = "artifacts.discard", level = "debug", skip_all)]
    async fn discard(&mut self, name: String) -> ArtifactsResult<()> {
        Ok(ArtifactsCapability::discard(self, &name)
            .await
            .map_err(guest_error))
    }
}
