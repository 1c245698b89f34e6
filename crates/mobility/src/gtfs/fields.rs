//! GTFS field formats: times past midnight, `YYYYMMDD` dates, coordinates. Pure functions; the
//! row reader names the file, line and column around their messages.

use chrono::NaiveDate;

/// Seconds after the service day's start for `H:MM:SS` or `HH:MM:SS` (hours may pass 24: a
/// trip of the service day that runs after midnight). Surrounding spaces are allowed, as some
/// feeds pad single-digit hours (` 5:49:00`).
pub fn parse_time(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not H:MM:SS");
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let digits = |p: &str, min_len: usize, max_len: usize| {
        (min_len..=max_len).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    if !(digits(h, 1, 3) && digits(m, 2, 2) && digits(s, 2, 2)) {
        return Err(bad());
    }
    let (h, m, s): (u32, u32, u32) = match (h.parse(), m.parse(), s.parse()) {
        (Ok(h), Ok(m), Ok(s)) => (h, m, s),
        _ => return Err(bad()),
    };
    if m > 59 || s > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

/// `HH:MM:SS` for seconds after a service day's start (hours may pass 24).
pub fn format_time(secs: u32) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A `YYYYMMDD` date.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a YYYYMMDD date"));
    }
    NaiveDate::parse_from_str(t, "%Y%m%d").map_err(|_| format!("{text:?} is not a calendar date"))
}

/// A number within `min..=max`.
pub fn parse_in(text: &str, min: f64, max: f64, what: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("{text:?} is not a {what} ({min} to {max})")),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

/// A whole number within `min..=max`.
pub fn parse_int(text: &str, min: i64, max: i64) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("{text:?} is not from {min} to {max}")),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_pass_midnight_and_refuse_malformed_text() {
        assert_eq!(parse_time("05:50:00"), Ok(5 * 3600 + 50 * 60));
        assert_eq!(parse_time(" 5:49:00"), Ok(5 * 3600 + 49 * 60));
        assert_eq!(parse_time("29:39:01"), Ok(29 * 3600 + 39 * 60 + 1));
        assert_eq!(
            parse_time("25:6o:00").unwrap_err(),
            r#""25:6o:00" is not H:MM:SS"#
        );
        for bad in [
            "",
            "5:00",
            "05:60:00",
            "05:00:61",
            "5:0:00",
            "a:00:00",
            "1:00:00:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_time(25 * 3600 + 61), "25:01:01");
    }

    #[test]
    fn dates_and_numbers_name_what_they_expected() {
        assert_eq!(
            parse_date("20140526"),
            Ok(NaiveDate::from_ymd_opt(2014, 5, 26).unwrap())
        );
        assert_eq!(
            parse_date("20140231").unwrap_err(),
            r#""20140231" is not a calendar date"#
        );
        assert_eq!(
            parse_date("2014-05-26").unwrap_err(),
            r#""2014-05-26" is not a YYYYMMDD date"#
        );
        assert_eq!(
            parse_in("91.5", -90.0, 90.0, "latitude").unwrap_err(),
            r#""91.5" is not a latitude (-90 to 90)"#
        );
        assert_eq!(parse_in(" -16.9 ", -90.0, 90.0, "latitude"), Ok(-16.9));
        assert_eq!(
            parse_int("3", 0, 2).unwrap_err(),
            r#""3" is not from 0 to 2"#
        );
    }
}
