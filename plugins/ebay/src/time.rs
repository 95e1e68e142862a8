//! Times as eBay writes them (`2026-11-20T10:00:00.000Z`) and as records
//! carry them (RFC 3339 with an offset), to and from seconds since the
//! epoch. Pure: the guest's only clock is the run's `scheduled-at`.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-11-20T10:00:00.000Z` for `seconds` since the epoch: the form
/// eBay's filters and dates take.
pub fn format(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds since the epoch of an RFC 3339 time (`2026-11-20T10:00:00Z`,
/// `…T10:00:00.123+01:00`); None if it is not one.
pub fn parse(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_ebays_form() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_795_000_000), "2026-11-18T11:06:40.000Z");
        assert_eq!(parse("2026-11-18T11:06:40.000Z"), Some(1_795_000_000));
        assert_eq!(parse("2026-11-18T12:06:40+01:00"), Some(1_795_000_000));
        assert_eq!(
            parse("2024-02-29T00:00:00Z").map(format).as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
    }

    #[test]
    fn what_is_not_rfc_3339_is_refused() {
        for bad in [
            "",
            "2026-11-18",
            "2026-11-18T09:46:40",
            "2026-13-01T00:00:00Z",
            "2026-11-18T09:46:40.Z",
            "yesterday",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
