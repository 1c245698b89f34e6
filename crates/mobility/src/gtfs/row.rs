//! One CSV record of a GTFS file, read by column name, with every error naming the file, the
//! line and the column (`stop_times.txt:48213: arrival_time "25:6o:00" is not H:MM:SS`).

use chrono::NaiveDate;
use csv::ByteRecord;

use super::fields;

/// A file's header: column name → position. Columns may come in any order; unknown ones are
/// ignored.
pub(crate) struct Header {
    file: &'static str,
    names: Vec<String>,
}

impl Header {
    /// Reads the header record (a UTF-8 byte-order mark before the first name is dropped).
    pub(crate) fn new(file: &'static str, record: &ByteRecord) -> Result<Header, String> {
        let mut names = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let field = if i == 0 {
                field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
            } else {
                field
            };
            let name = std::str::from_utf8(field)
                .map_err(|_| format!("{file}:1: column {} of the header is not UTF-8", i + 1))?;
            names.push(name.trim().to_string());
        }
        Ok(Header { file, names })
    }

    /// The position of `column`, if the file has it.
    pub(crate) fn find(&self, column: &str) -> Option<usize> {
        self.names.iter().position(|n| n == column)
    }

    /// The position of a column the file must have.
    pub(crate) fn require(&self, column: &str) -> Result<usize, String> {
        self.find(column)
            .ok_or_else(|| format!("{}:1: no {column:?} column", self.file))
    }
}

/// The columns a file's reader uses, found once from its header.
pub(crate) struct Columns<const N: usize> {
    at: [Option<usize>; N],
    names: [&'static str; N],
}

impl<const N: usize> Columns<N> {
    /// Finds `names`; those in `required` must be present.
    pub(crate) fn find(
        header: &Header,
        names: [&'static str; N],
        required: &[&str],
    ) -> Result<Columns<N>, String> {
        let mut at = [None; N];
        for (i, name) in names.iter().enumerate() {
            at[i] = if required.contains(name) {
                Some(header.require(name)?)
            } else {
                header.find(name)
            };
        }
        Ok(Columns { at, names })
    }
}

/// A record being read: every accessor names file, line and column in its error.
pub(crate) struct Row<'a, const N: usize> {
    pub(crate) file: &'static str,
    pub(crate) line: u64,
    record: &'a ByteRecord,
    columns: &'a Columns<N>,
}

impl<'a, const N: usize> Row<'a, N> {
    pub(crate) fn new(
        file: &'static str,
        line: u64,
        record: &'a ByteRecord,
        columns: &'a Columns<N>,
    ) -> Row<'a, N> {
        Row {
            file,
            line,
            record,
            columns,
        }
    }

    /// `file:line: column message`.
    pub(crate) fn error(&self, c: usize, message: impl std::fmt::Display) -> String {
        format!(
            "{}:{}: {} {message}",
            self.file, self.line, self.columns.names[c]
        )
    }

    /// Column `c`'s text, trimmed; `None` when the column is absent or the value empty.
    pub(crate) fn opt(&self, c: usize) -> Result<Option<&'a str>, String> {
        let Some(pos) = self.columns.at[c] else {
            return Ok(None);
        };
        let Some(bytes) = self.record.get(pos) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            self.error(
                c,
                format!("is not UTF-8 (byte {} of the value)", e.valid_up_to() + 1),
            )
        })?;
        let text = text.trim();
        Ok((!text.is_empty()).then_some(text))
    }

    /// Column `c`'s text, which must be present and not empty.
    pub(crate) fn req(&self, c: usize) -> Result<&'a str, String> {
        self.opt(c)?.ok_or_else(|| self.error(c, "is required"))
    }

    /// An id: required, at most 100 characters (the tables' key width).
    pub(crate) fn id(&self, c: usize) -> Result<&'a str, String> {
        let v = self.req(c)?;
        self.check_len(c, v, 100)
    }

    /// Optional text of at most `max` characters.
    pub(crate) fn text(&self, c: usize, max: usize) -> Result<Option<&'a str>, String> {
        match self.opt(c)? {
            Some(v) => self.check_len(c, v, max).map(Some),
            None => Ok(None),
        }
    }

    fn check_len(&self, c: usize, v: &'a str, max: usize) -> Result<&'a str, String> {
        if v.chars().count() > max {
            return Err(self.error(c, format!("is longer than {max} characters")));
        }
        Ok(v)
    }

    /// An optional time (`H:MM:SS`, may pass 24:00), as seconds.
    pub(crate) fn time(&self, c: usize) -> Result<Option<u32>, String> {
        self.opt(c)?
            .map(|v| fields::parse_time(v).map_err(|e| self.error(c, e)))
            .transpose()
    }

    /// A required `YYYYMMDD` date.
    pub(crate) fn date(&self, c: usize) -> Result<NaiveDate, String> {
        fields::parse_date(self.req(c)?).map_err(|e| self.error(c, e))
    }

    /// An optional `YYYYMMDD` date.
    pub(crate) fn opt_date(&self, c: usize) -> Result<Option<NaiveDate>, String> {
        self.opt(c)?
            .map(|v| fields::parse_date(v).map_err(|e| self.error(c, e)))
            .transpose()
    }

    /// An optional number within `min..=max`.
    pub(crate) fn number(
        &self,
        c: usize,
        min: f64,
        max: f64,
        what: &str,
    ) -> Result<Option<f64>, String> {
        self.opt(c)?
            .map(|v| fields::parse_in(v, min, max, what).map_err(|e| self.error(c, e)))
            .transpose()
    }

    /// An optional whole number within `min..=max`.
    pub(crate) fn int(&self, c: usize, min: i64, max: i64) -> Result<Option<i64>, String> {
        self.opt(c)?
            .map(|v| fields::parse_int(v, min, max).map_err(|e| self.error(c, e)))
            .transpose()
    }

    /// A required whole number within `min..=max`.
    pub(crate) fn req_int(&self, c: usize, min: i64, max: i64) -> Result<i64, String> {
        fields::parse_int(self.req(c)?, min, max).map_err(|e| self.error(c, e))
    }
}
