//! Reads a `mysqldump`/`mariadb-dump` stream as it passes: rows per table (the tuples of each
//! `INSERT INTO … VALUES` line) and the binary-log position the dump stands at (its
//! `-- CHANGE MASTER TO` comment), so the manifest's counts are the dump's own.

use std::collections::BTreeMap;

/// The binary-log coordinates a dump was taken at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinlogPosition {
    /// The binary-log file, e.g. `mysql-bin.000003`.
    pub file: String,
    /// The position in it.
    pub position: u64,
}

enum Mode {
    /// The start of a line, kept until it is known what the line is.
    Head,
    /// Inside the values of an INSERT: counting top-level tuples.
    Values {
        depth: u32,
        in_str: bool,
        escaped: bool,
    },
    /// The rest of a line that is neither.
    Skip,
}

/// Feed it the dump in pieces of any size.
pub(crate) struct DumpCounter {
    mode: Mode,
    head: Vec<u8>,
    table: String,
    pub(crate) rows: BTreeMap<String, u64>,
    pub(crate) binlog: Option<BinlogPosition>,
}

const HEAD_MAX: usize = 600;

fn quoted_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split('\'').next()
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn table_after(head: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(prefix)?;
    let end = rest.iter().position(|b| *b == b'`')?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

impl DumpCounter {
    pub(crate) fn new() -> DumpCounter {
        DumpCounter {
            mode: Mode::Head,
            head: Vec::new(),
            table: String::new(),
            rows: BTreeMap::new(),
            binlog: None,
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        for &b in data {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        match &mut self.mode {
            Mode::Head => {
                // MySQL writes `VALUES (…),(…);` on one line, MariaDB 10.11 `VALUES` and then a
                // line per row: either way the values start after `VALUES` and a space or newline.
                if (b == b'\n' || b == b' ') && self.starts_values() {
                    return;
                }
                if b == b'\n' {
                    self.end_of_head_line();
                    return;
                }
                self.head.push(b);
                if self.head.len() > HEAD_MAX {
                    self.mode = Mode::Skip;
                }
            }
            Mode::Values {
                depth,
                in_str,
                escaped,
            } => {
                if *in_str {
                    if *escaped {
                        *escaped = false;
                    } else if b == b'\\' {
                        *escaped = true;
                    } else if b == b'\'' {
                        *in_str = false;
                    }
                    return;
                }
                match b {
                    b'\'' => *in_str = true,
                    b'(' => {
                        if *depth == 0 {
                            *self.rows.entry(self.table.clone()).or_insert(0) += 1;
                        }
                        *depth += 1;
                    }
                    b')' => *depth = depth.saturating_sub(1),
                    // The statement's end; the rest of its line is skipped.
                    b';' if *depth == 0 => {
                        self.mode = Mode::Skip;
                    }
                    _ => {}
                }
            }
            Mode::Skip => {
                if b == b'\n' {
                    self.mode = Mode::Head;
                    self.head.clear();
                }
            }
        }
    }

    /// Whether the line so far is `INSERT INTO `t` VALUES`: then counting starts.
    fn starts_values(&mut self) -> bool {
        if !(self.head.starts_with(b"INSERT INTO `") && self.head.ends_with(b"` VALUES")) {
            return false;
        }
        let Some(t) = table_after(&self.head, b"INSERT INTO `") else {
            return false;
        };
        self.table = t;
        self.head.clear();
        self.mode = Mode::Values {
            depth: 0,
            in_str: false,
            escaped: false,
        };
        true
    }

    fn end_of_head_line(&mut self) {
        if let Some(t) = table_after(&self.head, b"CREATE TABLE `") {
            self.rows.entry(t).or_insert(0);
        } else if self.head.starts_with(b"-- CHANGE MASTER TO")
            || self.head.starts_with(b"-- CHANGE REPLICATION SOURCE TO")
        {
            let line = String::from_utf8_lossy(&self.head);
            if let (Some(file), Some(position)) = (
                quoted_after(&line, "LOG_FILE='"),
                number_after(&line, "LOG_POS="),
            ) {
                self.binlog = Some(BinlogPosition {
                    file: file.to_string(),
                    position,
                });
            }
        }
        self.head.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tuples_whatever_the_strings_hold_and_wherever_the_pieces_split() {
        let dump = "-- MariaDB dump\n\
            -- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000007', MASTER_LOG_POS=4242;\n\
            CREATE TABLE `users` (\n  `id` int\n);\n\
            CREATE TABLE `empty` (\n  `id` int\n);\n\
            INSERT INTO `users` VALUES (1,'a (b), c'),(2,'it\\'s (x'),(3,'\\\\'),(4,0x28293B);\n\
            INSERT INTO `users` VALUES (5,NULL);\n\
            INSERT INTO `trips` VALUES (1,'x\\ny');\n\
            INSERT INTO `trips` VALUES\n(2,'a;b'),\n(3,'c)\\'');\n\
            /*!40000 ALTER TABLE `trips` ENABLE KEYS */;\n";
        for split in [1, 3, 7, 1000] {
            let mut c = DumpCounter::new();
            for piece in dump.as_bytes().chunks(split) {
                c.feed(piece);
            }
            let rows: Vec<(&str, u64)> = c.rows.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            assert_eq!(
                rows,
                [("empty", 0), ("trips", 3), ("users", 5)],
                "split {split}"
            );
            assert_eq!(
                c.binlog,
                Some(BinlogPosition {
                    file: "mysql-bin.000007".into(),
                    position: 4242
                })
            );
        }
    }
}
