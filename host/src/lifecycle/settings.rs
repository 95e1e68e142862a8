//! Settings of an installation that need no plan: on or off, test or live,
//! a feed's schedule, removal, and re-sealing secrets after a master key
//! rotation. Each is a compare-and-set on the installation's revision.

use super::{LifecycleError, installation_row, installed_plugin, schedules_for};
use crate::manifest::Plugin;
use crate::runs::Mode;
use crate::secrets::{Keyring, SecretSlot};
use crate::storage::{InstallationRow, Registry, ScheduleRow, StoredSecret};

/// Re-seals, under the keyring's current key, every stored secret that was
/// sealed with a previous key (after a master key rotation). One transaction
/// per installation; returns how many secrets were re-sealed.
pub async fn reseal_secrets(
    store: &dyn Registry,
    keyring: &Keyring,
) -> Result<usize, LifecycleError> {
    let mut count = 0;
    for row in store.installations(None, false).await? {
        let secrets = store.secrets(&row.tenant, &row.id).await?;
        if !secrets.iter().any(|s| keyring.needs_reseal(&s.sealed)) {
            continue;
        }
        let resealed = secrets
            .iter()
            .map(|s| {
                let slot = SecretSlot {
                    tenant: &row.tenant,
                    installation: &row.id,
                    key: &s.key,
                };
                let value = keyring.open(slot, &s.sealed)?;
                Ok(StoredSecret {
                    key: s.key.clone(),
                    sealed: keyring.seal(slot, &value),
                })
            })
            .collect::<Result<Vec<_>, LifecycleError>>()?;
        count += resealed.len();
        store.update_installation(row, Some(resealed), None).await?;
    }
    Ok(count)
}

/// Refuses a change made against `expected` (the revision the caller
/// read) when the installation has changed since: a stale edit.
pub fn check_revision(row: &InstallationRow, expected: Option<i64>) -> Result<(), LifecycleError> {
    match expected {
        Some(expected) if expected != row.revision => Err(LifecycleError::StaleRevision {
            label: row.label(),
            expected,
            current: row.revision,
        }),
        _ => Ok(()),
    }
}

/// Switches an installation on or off. History, config and storage stay.
pub async fn set_enabled(
    store: &dyn Registry,
    tenant: &str,
    id: &str,
    enabled: bool,
    expected_revision: Option<i64>,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let mut row = installation_row(store, tenant, id).await?;
    check_revision(&row, expected_revision)?;
    row.enabled = enabled;
    row.updated_at = now;
    // Re-plan on enable: fires missed while disabled are not owed.
    let schedules: Vec<ScheduleRow> = store
        .schedules(tenant, id)
        .await?
        .into_iter()
        .map(|s| ScheduleRow {
            next_fire_at: None,
            due_at: None,
            ..s
        })
        .collect();
    row.revision = store
        .update_installation(row.clone(), None, enabled.then_some(schedules))
        .await?;
    Ok(row)
}

/// Sets an installation's mode.
pub async fn set_mode(
    store: &dyn Registry,
    tenant: &str,
    id: &str,
    mode: Mode,
    expected_revision: Option<i64>,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let mut row = installation_row(store, tenant, id).await?;
    check_revision(&row, expected_revision)?;
    row.mode = mode.as_str().to_string();
    row.updated_at = now;
    row.revision = store.update_installation(row.clone(), None, None).await?;
    Ok(row)
}

/// A change of one feed's schedule: an override (or, with `cron` None, back
/// to the manifest's default). The installation's schedules are read in
/// `time_zone` if given, else in the zone they have.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleChange<'a> {
    /// The feed.
    pub feed: &'a str,
    /// Its cron expression (with seconds), or none for the manifest's
    /// default.
    pub cron: Option<&'a str>,
    /// The IANA time zone the installation's schedules are read in; none
    /// keeps the one they have.
    pub time_zone: Option<&'a str>,
}

/// Overrides one feed's schedule (see [`ScheduleChange`]).
pub async fn set_schedule(
    store: &dyn Registry,
    tenant: &str,
    id: &str,
    change: ScheduleChange<'_>,
    expected_revision: Option<i64>,
    now: i64,
) -> Result<ScheduleRow, LifecycleError> {
    let ScheduleChange {
        feed,
        cron,
        time_zone,
    } = change;
    let mut row = installation_row(store, tenant, id).await?;
    check_revision(&row, expected_revision)?;
    let plugin: Plugin = installed_plugin(store, &row)?;
    let stored = store.schedules(tenant, id).await?;
    let time_zone = match (time_zone, stored.first()) {
        (Some(zone), _) => zone.to_string(),
        (None, Some(s)) => s.time_zone.clone(),
        (None, None) => "UTC".to_string(),
    };
    let overrides: Vec<(String, String)> = stored
        .into_iter()
        .filter(|s| s.overridden && s.feed != feed)
        .map(|s| (s.feed, s.cron))
        .chain(cron.map(|c| (feed.to_string(), c.to_string())))
        .collect();
    if plugin.manifest.feed(feed).is_none() {
        return Err(LifecycleError::UnknownFeed {
            plugin: plugin.label(),
            feed: feed.to_string(),
        });
    }
    let schedules = schedules_for(&plugin, tenant, id, &overrides, &time_zone)?;
    row.updated_at = now;
    store
        .update_installation(row, None, Some(schedules.clone()))
        .await?;
    Ok(schedules
        .into_iter()
        .find(|s| s.feed == feed)
        .expect("the feed exists"))
}

/// Removes an installation (see [`Registry::remove_installation`]) if
/// `row` (as the caller read it, e.g. before asking to confirm) is still
/// current.
pub async fn remove(
    store: &dyn Registry,
    row: &InstallationRow,
    now: i64,
) -> Result<(), LifecycleError> {
    store
        .remove_installation(&row.tenant, &row.id, Some(row.revision), now)
        .await?;
    Ok(())
}
