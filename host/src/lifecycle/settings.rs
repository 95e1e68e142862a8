//! Settings of an installation that need no plan: on or off, test or live,
//! a feed's schedule, removal, and re-sealing secrets after a master key
//! rotation. Each is a compare-and-set on the installation's revision.

use super::{LifecycleError, installation_row, installed_plugin, schedules_for};
use crate::manifest::Plugin;
use crate::runs::Mode;
use crate::secrets::{Keyring, SecretSlot};
use crate::storage::{InstallationRow, ScheduleRow, SqliteStore, StoredSecret};

/// Re-seals, under the keyring's current key, every stored secret that was
/// sealed with a previous key (after a master key rotation). One transaction
/// per installation; returns how many secrets were re-sealed.
pub fn reseal_secrets(store: &SqliteStore, keyring: &Keyring) -> Result<usize, LifecycleError> {
    let mut count = 0;
    for row in store.installations(None, false)? {
        let secrets = store.secrets(&row.tenant, &row.id)?;
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
        store.update_installation(&row, Some(&resealed), None)?;
        count += resealed.len();
    }
    Ok(count)
}

/// Switches an installation on or off. History, config and storage stay.
pub fn set_enabled(
    store: &SqliteStore,
    tenant: &str,
    id: &str,
    enabled: bool,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let mut row = installation_row(store, tenant, id)?;
    row.enabled = enabled;
    row.updated_at = now;
    // Re-plan on enable: fires missed while disabled are not owed.
    let schedules: Vec<ScheduleRow> = store
        .schedules(tenant, id)?
        .into_iter()
        .map(|s| ScheduleRow {
            next_fire_at: None,
            due_at: None,
            ..s
        })
        .collect();
    row.revision =
        store.update_installation(&row, None, enabled.then_some(schedules.as_slice()))?;
    Ok(row)
}

/// Sets an installation's mode.
pub fn set_mode(
    store: &SqliteStore,
    tenant: &str,
    id: &str,
    mode: Mode,
    now: i64,
) -> Result<InstallationRow, LifecycleError> {
    let mut row = installation_row(store, tenant, id)?;
    row.mode = mode.as_str().to_string();
    row.updated_at = now;
    row.revision = store.update_installation(&row, None, None)?;
    Ok(row)
}

/// Overrides one feed's schedule (or, with `cron` None, goes back to the
/// manifest's default). The installation's schedules are read in
/// `time_zone` if given, else in the zone they have.
pub fn set_schedule(
    store: &SqliteStore,
    tenant: &str,
    id: &str,
    feed: &str,
    cron: Option<&str>,
    time_zone: Option<&str>,
    now: i64,
) -> Result<ScheduleRow, LifecycleError> {
    let mut row = installation_row(store, tenant, id)?;
    let plugin: Plugin = installed_plugin(store, &row)?;
    let stored = store.schedules(tenant, id)?;
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
    store.update_installation(&row, None, Some(&schedules))?;
    Ok(schedules
        .into_iter()
        .find(|s| s.feed == feed)
        .expect("the feed exists"))
}

/// Removes an installation (see [`SqliteStore::remove_installation`]) if
/// `row` (as the caller read it, e.g. before asking to confirm) is still
/// current.
pub fn remove(store: &SqliteStore, row: &InstallationRow, now: i64) -> Result<(), LifecycleError> {
    store.remove_installation(&row.tenant, &row.id, Some(row.revision), now)?;
    Ok(())
}
