//! Whereabouts as counts that cannot be inverted: positions binned into fixed cells of at least
//! a kilometre a side, each cell counted whole (never cut by the query's radius, so moving or
//! resizing a query cannot isolate one position), and a cell shown only when it holds at least
//! [`MIN_USERS`] distinct users. What callers without `users:read` see of other users
//! (docs/security.md#whereabouts).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::trip::haversine_m;

/// The fewest distinct users a cell must hold to be shown (k-anonymity).
pub const MIN_USERS: usize = 5;
/// A cell's height, degrees of latitude: 1.11 km. Its width in degrees of longitude grows
/// toward the poles so that it is never narrower than its height.
pub const CELL_DEG: f64 = 0.01;
/// More than a cell's diagonal, km: a query reads this much beyond its radius, so that every
/// cell whose centre is within the radius is counted whole.
pub const MARGIN_KM: f64 = 2.0;

/// One cell of the grid: its centre, and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// The centre's latitude.
    pub lat: f64,
    /// The centre's longitude.
    pub lng: f64,
    /// Positions (trips, users) in the cell.
    pub count: u64,
    /// Distinct users among them (at least [`MIN_USERS`]).
    pub users: u64,
}

/// The cell of a position: its row (latitude band) and column.
type Key = (i64, i64);

/// A band's width in degrees of longitude: `CELL_DEG` at the equator, wider toward the poles
/// (measured at the band's pole-ward edge, where the band is narrowest).
fn lng_step(row: i64) -> f64 {
    let edge = (row as f64 * CELL_DEG)
        .abs()
        .max(((row + 1) as f64 * CELL_DEG).abs());
    (CELL_DEG / edge.to_radians().cos().max(0.01)).min(360.0)
}

fn key_of(lat: f64, lng: f64) -> Key {
    let row = (lat / CELL_DEG).floor() as i64;
    let col = ((lng + 180.0) / lng_step(row)).floor() as i64;
    (row, col)
}

fn centre((row, col): Key) -> (f64, f64) {
    let lat = (row as f64 + 0.5) * CELL_DEG;
    let lng = -180.0 + (col as f64 + 0.5) * lng_step(row);
    (lat, lng)
}

/// Counts `positions` (lat, lng, user) into cells, keeping the cells whose centre is within
/// `radius_km` of (`lat`, `lng`) and that hold at least [`MIN_USERS`] users; when `complete_km`
/// is set (the positions were cut at that distance), only cells wholly inside it.
pub fn count(
    positions: impl IntoIterator<Item = (f64, f64, u64)>,
    (lat, lng, radius_km): (f64, f64, f64),
    complete_km: Option<f64>,
) -> Vec<Cell> {
    let mut cells: BTreeMap<Key, (u64, BTreeSet<u64>)> = BTreeMap::new();
    for (plat, plng, user) in positions {
        let cell = cells.entry(key_of(plat, plng)).or_default();
        cell.0 += 1;
        cell.1.insert(user);
    }
    cells
        .into_iter()
        .filter_map(|(key, (count, users))| {
            let (clat, clng) = centre(key);
            let km = haversine_m(lat, lng, clat, clng) / 1000.0;
            let whole = complete_km.is_none_or(|c| km + MARGIN_KM / 2.0 <= c);
            (km <= radius_km && whole && users.len() >= MIN_USERS).then(|| Cell {
                lat: (clat * 1e6).round() / 1e6,
                lng: (clng * 1e6).round() / 1e6,
                count,
                users: users.len() as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_at_least_a_kilometre_on_each_side_at_any_latitude() {
        for lat in [-89.0, -60.0, -16.92, 0.0, 45.5, 69.9, 89.0] {
            let (row, col) = key_of(lat, 10.0);
            let (a, b) = (centre((row, col)), centre((row, col + 1)));
            let (up, _) = centre((row + 1, col));
            let width = haversine_m(a.0, a.1, b.0, b.1);
            let height = haversine_m(a.0, a.1, up, a.1);
            assert!(
                width >= 1000.0 && height >= 1000.0,
                "{lat}: {width} × {height}"
            );
        }
    }

    #[test]
    fn fewer_than_k_users_show_nothing_and_a_cell_is_counted_whole() {
        // The centre of the cell holding a Cairns street corner; positions within 300 m of it.
        let at = centre(key_of(-16.9237, 145.7661));
        // Four users in one cell: hidden. A fifth: shown, with all five positions.
        let four: Vec<_> = (1..=4).map(|u| (at.0, at.1, u)).collect();
        assert!(count(four.clone(), (at.0, at.1, 1.0), None).is_empty());
        let mut five = four;
        five.push((at.0 + 0.0025, at.1, 5));
        five.push((at.0, at.1, 5));
        let cells = count(five.clone(), (at.0, at.1, 1.0), None);
        assert_eq!(cells.len(), 1);
        assert_eq!((cells[0].count, cells[0].users), (6, 5));
        // The radius selects cells, never positions: a radius that ends between two positions
        // of the cell changes nothing.
        for radius in [0.1, 0.25, 0.3, 1.5] {
            assert_eq!(count(five.clone(), (at.0, at.1, radius), None), cells);
        }
        // A query centred elsewhere whose radius just covers the cell's centre: the same.
        let off = (at.0 + 0.004, at.1);
        let reach = haversine_m(off.0, off.1, at.0, at.1) / 1000.0 + 0.001;
        assert_eq!(count(five.clone(), (off.0, off.1, reach), None), cells);
        // Positions cut short of the cell's far side: the cell is not shown.
        assert!(count(five, (at.0, at.1, 1.0), Some(0.5)).is_empty());
    }
}
