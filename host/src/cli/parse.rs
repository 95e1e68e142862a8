//! Parsers for command-line values (ages, durations, rates, ids) and how an
//! error echoes a value: never a panic, whatever the input, and an error
//! names the input (cut when long, control characters escaped).

use anyhow::{Context, bail};

/// `30m`, `12h`, `7d`, `45s` as seconds.
pub fn parse_age_secs(s: &str) -> anyhow::Result<i64> {
    let shown = shown(s);
    let Some((split, unit)) = s.char_indices().last() else {
        bail!("`{shown}` is not a duration like 45s, 30m, 12h, 7d");
    };
    let n: i64 = s[..split]
        .parse()
        .with_context(|| format!("`{shown}` is not a duration like 45s, 30m, 12h, 7d"))?;
    let unit_secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("`{shown}`: use s, m, h or d"),
    };
    n.checked_mul(unit_secs)
        .with_context(|| format!("`{shown}` is too long a duration"))
}

/// A duration argument (`250ms`, `45s`, `30m`, `12h`, `7d`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("`{}` is not a duration like 250ms, 45s, 30m", shown(s)));
    }
    match parse_age_secs(s) {
        Ok(n) if n >= 0 => Ok(std::time::Duration::from_secs(n as u64)),
        Ok(_) => Err(format!("`{}` is negative", shown(s))),
        Err(e) => Err(e.to_string()),
    }
}

/// `30m`, `12h`, `7d` ago, or an RFC 3339 time, as Unix seconds.
pub fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let context = || {
        format!(
            "--since `{}` is not a time or an age like 30m, 12h, 7d",
            shown(s)
        )
    };
    let secs = parse_age_secs(s).with_context(context)?;
    chrono::Utc::now()
        .timestamp()
        .checked_sub(secs)
        .with_context(context)
}

/// A time argument in RFC 3339 (`2026-11-23T10:00:00Z`), as Unix seconds.
/// A value parser: what it refuses is bad usage (exit 2).
pub fn parse_time(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| {
            format!(
                "`{}` is not an RFC 3339 time like 2026-11-23T10:00:00Z ({e})",
                shown(s)
            )
        })
}

/// [`parse_since`] in milliseconds.
pub fn parse_since_ms(s: &str) -> anyhow::Result<i64> {
    parse_since(s)?
        .checked_mul(1000)
        .with_context(|| format!("--since `{}` is out of range", shown(s)))
}

/// A rate limit in requests per second: a positive number from one request
/// every 1,000 seconds to a million a second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a number of requests per second", shown(s)))?;
    if (0.001..=1_000_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "`{}` is out of range: use 0.001 (one request every 1,000 s) to 1000000",
            shown(s)
        ))
    }
}

/// How much of a value given on the command line an error echoes: long
/// ones are cut.
const SHOWN_CHARS: usize = 40;

/// `text` as an error message may echo it: at most [`SHOWN_CHARS`]
/// characters, then `…`, and control characters escaped.
pub fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Checks a tenant or installation id given as `flag`, like `tenant add`.
pub fn valid_id(flag: &str, id: &str) -> anyhow::Result<()> {
    airlock::lifecycle::check_id(id).map_err(|_| {
        anyhow::anyhow!(
            "{flag} `{}` is not a valid id: use 1-64 lower-case letters, digits, `-` and `_`",
            shown(id)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs mixing digits, units, signs, exponents, spaces and multi-byte
    /// characters, from a fixed seed: the parsers' fuzz corpus.
    fn corpus() -> Vec<String> {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "5",
            "9",
            "99999999999999999999",
            "-",
            "+",
            ".",
            "e",
            "E",
            "-20",
            "s",
            "m",
            "h",
            "d",
            "ms",
            "é",
            "日",
            "\u{0}",
            "\n",
            " ",
            "=",
            ":",
            "/",
            "NaN",
            "inf",
            "T",
            "2026-11-23T10:00:00Z",
            "x",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..20_000)
            .map(|_| {
                let len = (next() % 6) as usize;
                (0..len)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            })
            .chain(["5é", "1e-20", "", "é", "9223372036854775807d"].map(String::from))
            .collect()
    }

    #[test]
    fn parsers_never_panic_and_their_errors_name_the_input() {
        for input in corpus() {
            let named = |message: String| {
                assert!(
                    message.contains(&shown(&input)),
                    "`{input:?}`: the error does not name it: {message}"
                );
            };
            if let Err(e) = parse_age_secs(&input) {
                named(format!("{e:#}"));
            }
            if let Err(e) = parse_duration(&input) {
                named(e);
            }
            if let Err(e) = parse_since(&input) {
                named(format!("{e:#}"));
            }
            if let Err(e) = parse_since_ms(&input) {
                named(format!("{e:#}"));
            }
            if let Err(e) = parse_time(&input) {
                named(e);
            }
            match parse_rate(&input) {
                Ok(rate) => assert!((0.001..=1_000_000.0).contains(&rate), "{input:?}"),
                Err(e) => named(e),
            }
            if let Err(e) = valid_id("--tenant", &input) {
                named(e.to_string());
            }
        }
    }

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(parse_age_secs("45s").unwrap(), 45);
        assert_eq!(parse_age_secs("30m").unwrap(), 1800);
        assert_eq!(parse_age_secs("7d").unwrap(), 604_800);
        assert!(parse_age_secs("5é").is_err());
        assert!(parse_age_secs("106751991167301d").is_err(), "overflow");
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        assert_eq!(parse_time("2026-11-23T10:00:00Z").unwrap(), 1_795_428_000);
        assert_eq!(
            parse_time("2026-11-23T11:00:00+01:00").unwrap(),
            1_795_428_000
        );
        assert!(parse_time("yesterday").is_err());
        for bad in ["0", "-1", "1e-20", "1e300", "NaN", "inf", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_and_odd_values_are_shown_cut_and_escaped() {
        assert_eq!(shown("acme"), "acme");
        let long = "x".repeat(5000);
        assert_eq!(shown(&long), format!("{}…", "x".repeat(SHOWN_CHARS)));
        assert_eq!(shown("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }
}
