//! The files an installation's feeds published, with the path they are
//! served at (the feed access token is not shown: only its hash is kept).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::auth::Allowed;
use super::{ApiResult, Problems};
use crate::admin::{Caller, Permission};
use crate::storage::{ArtifactVersion, Scope};
use crate::web::WebState;

/// A published artifact and where it is served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Artifact {
    /// Its latest version.
    #[serde(flatten)]
    pub latest: ArtifactVersion,
    /// Its live path on `serve --listen`; add `?token=…` with the
    /// installation's feed access token (`airlock artifacts token`).
    pub path: String,
    /// Whether the installation has a feed access token yet (without one,
    /// the URL answers 404).
    pub has_token: bool,
}

/// An installation's published artifacts.
#[utoipa::path(get, operation_id = "artifacts_list",
    path = "/api/tenants/{tenant}/installations/{installation}/artifacts",
    tag = "installations",
    params(("tenant" = String, Path, description = "The tenant's id"),
           ("installation" = String, Path, description = "The installation's id")),
    responses((status = 200, body = Vec<Artifact>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Artifact>>> {
    caller.require(Permission::Read)?;
    super::installations::visible(&state, &caller, &tenant, &id).await?;
    let store = state.host.store();
    let scope = Scope {
        tenant: tenant.clone(),
        installation: id.clone(),
    };
    let has_token = store.feed_token_hash(&scope).await?.is_some();
    let artifacts = store.artifacts(&scope).await?;
    Ok(Json(
        artifacts
            .into_iter()
            .map(|latest| Artifact {
                path: format!("/feeds/{tenant}/{id}/{}", latest.name),
                latest,
                has_token,
            })
            .collect(),
    ))
}
