//! What every console page shares: the document around it, the header
//! with the tenant's navigation and the bell, notices after a change, and
//! small helpers (times, the initials that stand for a plugin's logo,
//! outcome badges, the CSRF field of a form).

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Viewer;
use super::{ConsoleError, visible};
use crate::admin::Permission;
use crate::web::WebState;

/// The bell, drawn (no emoji font needed), hidden from assistive
/// technology: the link's label says what it is.
const BELL_SVG: &str = r#"<svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.7 21a2 2 0 0 1-3.4 0"/></svg>"#;

/// A page without the header (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    document(title, html! { main id="main" { (body) } })
}

fn document(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Airlock" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                (content)
            }
        }
    }
}

/// The request's context for a tenant's page: who looks, which tenant,
/// and the bell's number.
pub struct Ctx {
    /// The viewer.
    pub viewer: Viewer,
    /// The tenant, checked visible.
    pub tenant: String,
    /// Open notifications of the tenant.
    pub open: usize,
}

impl Ctx {
    /// The context of `tenant`'s page for `viewer` (404 if it may not see
    /// the tenant or the tenant does not exist).
    pub async fn load(state: &WebState, viewer: Viewer, tenant: &str) -> Result<Ctx, ConsoleError> {
        super::require(&viewer, Permission::Read)?;
        visible(&viewer, tenant)?;
        let store = state.host.store();
        if !store.tenant_exists(tenant).await? {
            return Err(ConsoleError::NotFound(format!("no tenant `{tenant}`")));
        }
        let open = store.notifications(Some(tenant), false).await?.len();
        Ok(Ctx {
            viewer,
            tenant: tenant.to_string(),
            open,
        })
    }

    /// Whether the viewer may make changes.
    pub fn may_operate(&self) -> bool {
        self.viewer.caller.may(Permission::Operate)
    }

    /// The path of the tenant's page `rest` (`integrations`, `runs/3`).
    pub fn path(&self, rest: &str) -> String {
        format!("/console/t/{}/{rest}", self.tenant)
    }

    /// The CSRF field every form carries.
    pub fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.viewer.csrf); }
    }

    /// A whole page: header, navigation (`current` marked), bell, notice.
    pub fn page(&self, current: &str, title: &str, notice: Option<&str>, body: Markup) -> Markup {
        let nav = [
            ("integrations", "Integrations"),
            ("runs", "Feed executions"),
            ("records", "Records"),
            ("artifacts", "Artifacts"),
            ("egress", "Egress"),
        ];
        let bell_label = match self.open {
            0 => "Notifications: none open".to_string(),
            1 => "Notifications: 1 open".to_string(),
            n => format!("Notifications: {n} open"),
        };
        let content = html! {
            header class="top" {
                a class="brand" href="/console" { "Airlock" }
                span class="tenant" { "Tenant " strong { (self.tenant) } }
                nav aria-label="Sections" {
                    ul {
                        @for (slug, label) in nav {
                            li {
                                @if slug == current {
                                    a href=(self.path(slug)) aria-current="page" { (label) }
                                } @else {
                                    a href=(self.path(slug)) { (label) }
                                }
                            }
                        }
                    }
                }
                a class=(if self.open > 0 { "bell ringing" } else { "bell" }) href=(self.path("notifications"))
                    aria-label=(bell_label) title=(bell_label) {
                    (PreEscaped(BELL_SVG))
                    span class="count" data-testid="bell-count" { (self.open) }
                }
                (who(&self.viewer))
            }
            main id="main" {
                @if let Some(notice) = notice {
                    p class="notice" role="status" { (notice) }
                }
                (body)
            }
        };
        document(title, content)
    }
}

/// The viewer's token and the logout button.
pub fn who(viewer: &Viewer) -> Markup {
    html! {
        form class="who" method="post" action="/console/logout" {
            span { (viewer.caller.name) " · " (viewer.caller.permissions().join(", ")) }
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" { "Log out" }
        }
    }
}

/// A page for a viewer outside any tenant (the operator's tenant list).
pub fn plain_page(viewer: &Viewer, title: &str, open: usize, body: Markup) -> Markup {
    let content = html! {
        header class="top" {
            a class="brand" href="/console" { "Airlock" }
            span class="tenant" { "All tenants · " (open) " open notifications" }
            (who(viewer))
        }
        main id="main" { (body) }
    };
    document(title, content)
}

/// A Unix time as UTC, to the second.
pub fn time(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

/// A time in milliseconds, as [`time`].
pub fn time_ms(ms: i64) -> String {
    time(ms.div_euclid(1000))
}

/// Up to two letters standing for a plugin, as its logo.
pub fn initials(name: &str) -> String {
    let mut out: String = name
        .split(|c: char| !c.is_alphanumeric())
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    if out.chars().count() < 2 {
        out = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .take(2)
            .collect::<String>()
            .to_uppercase();
    }
    out
}

/// A run's outcome as a badge.
pub fn outcome(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// The text of a notice named in a redirect's `?done=` (a fixed list: a
/// link cannot make the console say anything else).
pub fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "enabled" => "Switched on: its feeds run on their schedules.",
        "disabled" => "Switched off: none of its feeds run until it is switched on.",
        "queued" => {
            "Queued: the running server starts it in a moment. Its execution appears under Feed executions."
        }
        "removed" => "Removed. Its run history is kept.",
        "installed" => "Installed and enabled.",
        "saved" => "Saved: the new settings passed Test connection.",
        "acknowledged" => "Acknowledged.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_stand_for_the_plugin() {
        for (name, expected) in [
            ("custom-store", "CS"),
            ("hello", "HE"),
            ("google shopping", "GS"),
            ("x", "X"),
        ] {
            assert_eq!(initials(name), expected, "{name}");
        }
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert!(notice(Some("queued")).is_some());
        assert!(notice(Some("<script>")).is_none());
        assert!(notice(None).is_none());
    }
}
