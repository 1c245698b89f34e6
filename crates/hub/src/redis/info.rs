//! Redis `INFO`: one node's text, or a Cluster's answer of one text per node, as a field map.

use std::collections::HashMap;

use redis::Value;

fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::Map(pairs) => pairs.iter().for_each(|(_, v)| texts(v, out)),
        Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
        _ => {}
    }
}

/// One node's `INFO`, or every node's merged: the first node's version, counters summed.
pub(super) fn merge_info(v: &Value) -> HashMap<String, String> {
    let mut all = Vec::new();
    texts(v, &mut all);
    let mut merged = HashMap::new();
    for text in &all {
        for (k, val) in parse_info(text) {
            match merged.get_mut(&k) {
                None => {
                    merged.insert(k, val);
                }
                Some(existing) => {
                    if let (Ok(a), Ok(b)) = (existing.parse::<u64>(), val.parse::<u64>())
                        && matches!(
                            k.as_str(),
                            "used_memory" | "keyspace_hits" | "keyspace_misses"
                        )
                    {
                        *existing = (a + b).to_string();
                    }
                }
            }
        }
    }
    merged
}

/// `INFO` text → field map.
fn parse_info(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let m = parse_info("# Server\r\nredis_version:7.0.15\r\nused_memory:1024\r\n");
        assert_eq!(m.get("redis_version").map(String::as_str), Some("7.0.15"));
        assert_eq!(m.get("used_memory").map(String::as_str), Some("1024"));
    }
}
