//! The `--until` and `--completed-since` moments of the command line.

/// A moment: RFC 3339, or `YYYY-MM-DD HH:MM:SS` taken as UTC (a clear error before any work).
pub(super) fn moment(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| format!("`{text}` is neither RFC 3339 nor `YYYY-MM-DD HH:MM:SS` (UTC)"))
}
