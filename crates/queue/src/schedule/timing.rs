//! When a schedule fires: a cron expression (seconds first, optional) in an IANA time zone, or
//! a fixed interval. Cron times are computed in the zone, so a daily job stays at its local
//! hour across daylight-saving changes; a local time the change skips fires at the next
//! matching time after it, and a local time that occurs twice fires once.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::ScheduleError;

/// The names of the cron fields, in order.
const FIELDS: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];

/// A checked timing.
#[derive(Debug, Clone)]
pub(crate) enum Timing {
    /// A cron expression in a zone.
    Cron { cron: Box<Cron>, tz: Tz },
    /// Every `ms` milliseconds from `from` (Unix ms).
    Every { ms: i64, from: i64 },
}

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

/// Parses `expr`, naming the field at fault: `cron: field 2 (minute) "7o": …`.
pub(crate) fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if !(5..=6).contains(&fields.len()) {
        return Err(ScheduleError::invalid(
            "cron",
            format!(
                "`{expr}` has {} fields; five (minute hour day month weekday) or six (with seconds first)",
                fields.len()
            ),
        ));
    }
    parser().parse(expr).map_err(|e| {
        // Find the first field that fails on its own, every other field being `*`.
        let offset = 6 - fields.len();
        let culprit = (0..fields.len()).find(|&i| {
            let probe: Vec<&str> = (0..fields.len())
                .map(|j| if j == i { fields[j] } else { "*" })
                .collect();
            parser().parse(&probe.join(" ")).is_err()
        });
        let message = match culprit {
            Some(i) => format!(
                "field {} ({}) `{}`: {e}",
                i + 1,
                FIELDS[i + offset],
                fields[i]
            ),
            None => format!("`{expr}`: {e}"),
        };
        ScheduleError::invalid("cron", message)
    })
}

/// The zone named `name` (IANA, e.g. `Europe/Berlin`).
pub(crate) fn parse_tz(name: &str) -> Result<Tz, ScheduleError> {
    Tz::from_str(name)
        .map_err(|_| ScheduleError::invalid("tz", format!("`{name}` is not an IANA time zone")))
}

impl Timing {
    /// The first tick strictly after `t` (Unix ms), if there is one.
    pub(crate) fn next_after(&self, t: i64) -> Option<i64> {
        match self {
            Timing::Every { ms, from } => {
                if t < *from {
                    return Some(*from);
                }
                Some(from + ((t - from) / ms + 1) * ms)
            }
            Timing::Cron { cron, tz } => {
                // Cron ticks fall on whole seconds; searching from a fraction of one would
                // carry the fraction into the answer.
                let whole = t - t.rem_euclid(1000);
                let at: DateTime<Tz> = tz.timestamp_millis_opt(whole).single()?;
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(next.with_timezone(&Utc).timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        Utc.timestamp_millis_opt(ms).unwrap().to_rfc3339()
    }

    #[test]
    fn a_cron_error_names_its_field() {
        let e = parse_cron("*/10 7o * * * *").unwrap_err().to_string();
        assert!(e.starts_with("cron: field 2 (minute) `7o`"), "{e}");
        let e = parse_cron("0 25 * * *").unwrap_err().to_string();
        assert!(e.starts_with("cron: field 2 (hour) `25`"), "{e}");
        let e = parse_cron("* * *").unwrap_err().to_string();
        assert!(e.contains("has 3 fields"), "{e}");
        assert!(parse_tz("Mars/Olympus").is_err());
    }

    #[test]
    fn cron_ticks_fall_on_whole_seconds() {
        let t = Timing::Cron {
            cron: Box::new(parse_cron("0 5 * * * *").unwrap()),
            tz: parse_tz("UTC").unwrap(),
        };
        let now = utc("2026-12-01T20:41:07.604Z");
        assert_eq!(iso(t.next_after(now).unwrap()), "2026-12-01T21:05:00+00:00");
        let on_tick = utc("2026-12-01T21:05:00Z");
        assert_eq!(
            iso(t.next_after(on_tick).unwrap()),
            "2026-12-01T22:05:00+00:00"
        );
    }

    #[test]
    fn every_counts_from_its_start() {
        let t = Timing::Every {
            ms: 1000,
            from: 5_000,
        };
        assert_eq!(t.next_after(0), Some(5_000));
        assert_eq!(t.next_after(5_000), Some(6_000));
        assert_eq!(t.next_after(6_500), Some(7_000));
    }

    #[test]
    fn a_daily_local_time_survives_spring_forward_and_fall_back() {
        let tz = parse_tz("Europe/Berlin").unwrap();
        // 02:30 every day: on 2026-03-29 clocks jump from 02:00 to 03:00 (no 02:30); on
        // 2026-10-25 they fall back from 03:00 to 02:00 (02:30 twice).
        let t = Timing::Cron {
            cron: Box::new(parse_cron("0 30 2 * * *").unwrap()),
            tz,
        };
        let mut at = utc("2026-03-27T12:00:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            at = t.next_after(at).unwrap();
            seen.push(iso(at));
        }
        assert_eq!(
            seen,
            [
                "2026-03-28T01:30:00+00:00", // 02:30 CET
                "2026-03-29T01:00:00+00:00", // 03:00 CEST: the first time after the gap
                "2026-03-30T00:30:00+00:00", // 02:30 CEST
                "2026-03-31T00:30:00+00:00",
            ]
        );
        let mut at = utc("2026-10-24T12:00:00Z");
        let mut seen = Vec::new();
        for _ in 0..3 {
            at = t.next_after(at).unwrap();
            seen.push(iso(at));
        }
        assert_eq!(
            seen,
            [
                "2026-10-25T00:30:00+00:00", // 02:30 CEST, the first of the two
                "2026-10-26T01:30:00+00:00", // 02:30 CET: once on the 25th
                "2026-10-27T01:30:00+00:00",
            ]
        );
    }
}
