//! The plugin store: upload a plugin (an operator's token), list what is
//! stored, and inspect one before installing it: its feeds, config schema,
//! the egress it asks for and the records it reads and writes.

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Serialize;

use super::auth::Allowed;
use super::{ApiError, ApiResult, Problems};
use crate::admin::{self, Action, Caller, Permission};
use crate::lifecycle::{self, StoredPlugin};
use crate::manifest::{ConfigType, Direction};
use crate::web::WebState;

/// The largest upload (manifest and component together).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// A stored plugin, as an operator inspects it before installing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// Its digest in the plugin store (manifest and component): what an
    /// install or upgrade names.
    pub digest: String,
    /// The plugin's id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// What kind of connector (`marketplace`, `accounting`…), if said.
    pub kind: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// The component's sha256.
    pub component_sha256: String,
    /// Its feeds.
    pub feeds: Vec<PluginFeed>,
    /// Its settings, with type and whether each is a secret.
    pub config: Vec<ConfigFieldInfo>,
    /// The hosts it asks to reach (granted only where the operator's
    /// permitted domains allow).
    pub egress: Vec<String>,
    /// The tenant's records it reads and writes (`read orders`).
    pub records: Vec<String>,
    /// Its inbound webhooks, by name.
    pub webhooks: Vec<String>,
}

/// A feed a plugin declares.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginFeed {
    /// Its name.
    pub name: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Its default schedule (cron with seconds, or `manual`).
    pub schedule: String,
    /// What it does.
    pub description: Option<String>,
}

/// A setting a plugin declares (the add form is generated from these).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigFieldInfo {
    /// Its key.
    pub key: String,
    /// `string`, `secret`, `enum`, `url`, `bool` or `int`.
    pub kind: String,
    /// Whether it is a secret (a masked input; never shown back).
    pub secret: bool,
    /// Whether an install must set it.
    pub required: bool,
    /// Its default, as text.
    pub default: Option<String>,
    /// The values an enum setting takes.
    pub values: Vec<String>,
    /// What it is.
    pub description: Option<String>,
}

/// What an API caller sees of a stored plugin.
pub fn info(stored: &StoredPlugin) -> PluginInfo {
    let m = &stored.plugin.manifest;
    PluginInfo {
        digest: stored.digest.clone(),
        id: m.plugin.id.clone(),
        version: m.plugin.version.clone(),
        kind: m.plugin.kind.clone(),
        description: m.plugin.description.clone(),
        component_sha256: stored.plugin.digest.clone(),
        feeds: m
            .feeds
            .iter()
            .map(|f| PluginFeed {
                name: f.name.clone(),
                direction: match f.direction {
                    Direction::Inbound => "inbound".into(),
                    Direction::Outbound => "outbound".into(),
                },
                schedule: f.schedule.clone(),
                description: f.description.clone(),
            })
            .collect(),
        config: m
            .config
            .iter()
            .map(|(key, field)| ConfigFieldInfo {
                key: key.clone(),
                kind: serde_json::to_value(field.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                secret: field.kind == ConfigType::Secret,
                required: field.required,
                default: field.default.as_ref().map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                values: field.values.clone(),
                description: field.description.clone(),
            })
            .collect(),
        egress: m
            .egress
            .allow
            .iter()
            .map(|e| format!("{} ({})", e.host, e.service))
            .chain(
                m.egress
                    .from_config
                    .iter()
                    .map(|key| format!("the origin of config `{key}`")),
            )
            .collect(),
        records: lifecycle::data_text(&m.data),
        webhooks: m.webhooks.iter().map(|w| w.name.clone()).collect(),
    }
}

/// The plugins in the plugin store (uploaded, or pinned by an install).
#[utoipa::path(get, operation_id = "plugins_list",
    path = "/api/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginInfo>), Problems))]
pub async fn list(
    State(state): State<WebState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PluginInfo>>> {
    caller.require(Permission::Read)?;
    let stored = lifecycle::stored_plugins(&state.host)?;
    Ok(Json(stored.iter().map(info).collect()))
}

/// One stored plugin.
#[utoipa::path(get, operation_id = "plugins_show",
    path = "/api/plugins/{digest}", tag = "plugins",
    params(("digest" = String, Path, description = "The plugin's digest in the store")),
    responses((status = 200, body = PluginInfo), Problems))]
pub async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path(digest): Path<String>,
) -> ApiResult<Json<PluginInfo>> {
    caller.require(Permission::Read)?;
    let stored = lifecycle::stored_plugin(&state.host, &digest)?;
    Ok(Json(info(&stored)))
}

/// Uploads a plugin into the plugin store (an operator's token with
/// `operate`): a `multipart/form-data` body with the parts `manifest`
/// (plugin.toml) and `component` (the .wasm). It is checked as an install
/// checks it (the manifest valid, the component a component that compiles)
/// and stored under its digest; uploading the same plugin again changes
/// nothing.
#[utoipa::path(post, operation_id = "plugins_upload",
    path = "/api/plugins", tag = "plugins",
    request_body(content_type = "multipart/form-data",
        description = "Parts `manifest` (plugin.toml) and `component` (the .wasm)"),
    responses((status = 201, body = PluginInfo), Problems))]
pub async fn upload(
    State(state): State<WebState>,
    caller: Caller,
    mut form: Multipart,
) -> ApiResult<(StatusCode, Json<PluginInfo>)> {
    caller.operator()?;
    caller.require(Permission::Operate)?;
    let (mut manifest, mut component) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::invalid(e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        match name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid("the manifest is not UTF-8 text"))?;
                manifest = Some(text);
            }
            "component" => component = Some(bytes),
            other => {
                return Err(ApiError::invalid(format!(
                    "unexpected part `{other}`: send `manifest` and `component`"
                )));
            }
        }
    }
    let (Some(manifest), Some(component)) = (manifest, component) else {
        return Err(ApiError::invalid(
            "send both parts: `manifest` (plugin.toml) and `component` (the .wasm)",
        ));
    };
    let stored = lifecycle::store_plugin(&state.host, &manifest, &component).await?;
    let label = stored.plugin.label();
    let action = Action {
        action: "plugin.upload",
        tenant: None,
        target: label,
        detail: format!("digest {}", stored.digest),
    };
    admin::record(
        &**state.host.store(),
        Some(&caller),
        action,
        Utc::now().timestamp(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(info(&stored))))
}
