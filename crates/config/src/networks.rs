//! Address lists in the configuration (`server.trusted_proxies`): addresses and networks in
//! CIDR notation, comma-separated.

use std::net::IpAddr;

/// One address or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(b) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(b) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses `10.0.0.0/8, 192.168.1.7, ::1`; an empty list is no network. The error names the
/// entry.
pub fn networks(list: &str) -> Result<Vec<Network>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (addr, prefix) = entry.split_once('/').unwrap_or((entry, ""));
            let base: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{entry}` is not an address or network"))?;
            let most = if base.is_ipv4() { 32 } else { 128 };
            let prefix = if prefix.is_empty() {
                most
            } else {
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= most)
                    .ok_or_else(|| format!("`{entry}`: the prefix must be 0 to {most}"))?
            };
            Ok(Network { base, prefix })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks_match_what_they_cover() {
        let n = networks("10.0.0.0/8, 192.168.1.7 ,::1, fd00::/8").unwrap();
        let has = |ip: &str| n.iter().any(|net| net.contains(ip.parse().unwrap()));
        assert!(has("10.200.3.4") && has("192.168.1.7") && has("::1") && has("fd12::5"));
        assert!(has("::ffff:10.1.2.3"), "IPv4 mapped into IPv6");
        assert!(!has("11.0.0.1") && !has("192.168.1.8") && !has("::2") && !has("127.0.0.1"));
        assert!(networks("").unwrap().is_empty());
        assert_eq!(
            networks("10.0.0.0/33").unwrap_err(),
            "`10.0.0.0/33`: the prefix must be 0 to 32"
        );
        assert_eq!(
            networks("proxy").unwrap_err(),
            "`proxy` is not an address or network"
        );
    }
}
