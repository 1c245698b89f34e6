//! Reads for the API and CLI: user stats and points (cached per user, invalidated by trip
//! completions), trips and users near a point.
//!
//! Parameters are checked here, so HTTP and CLI refuse the same things with the same words.

use std::time::{SystemTime, UNIX_EPOCH};

use async_recursion::async_recursion as boxed;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use tsp_hub::{HubError, Level};

use crate::cells::{self, Cell};
use crate::complete::{TRAJECTORIES, Trips, ms_to_naive};
use crate::trip::haversine_m;

/// Why a query could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A bad parameter, named.
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("{0}")]
    /// Nothing matches (an unknown user).
    NotFound(String),
    #[error(transparent)]
    /// A store failed.
    Store(#[from] HubError),
}

fn invalid(field: &str, message: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An answer and where it came from (`l1`, `l2`, `source`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cached<T> {
    #[serde(flatten)]
    /// The answer.
    pub value: T,
    /// Where it came from.
    pub cache: Level,
}

/// `GET /users/{id}/stats?days=N`: completed trips that started in the last N days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStats {
    /// The user.
    pub user_id: u64,
    /// The window, in days back from now.
    pub days: u32,
    /// Completed trips in it.
    pub trips: u64,
    /// Their distance, summed.
    pub total_distance_m: f64,
    /// `null` without trips.
    pub average_duration_s: Option<f64>,
    /// Their cost, summed.
    pub total_cost: f64,
}

/// `GET /users/{id}/points`. Transactions carry signed amounts: earn > 0, redeem < 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPoints {
    /// The user.
    pub user_id: u64,
    /// Points earned, all time.
    pub earned: i64,
    /// As a positive number.
    pub redeemed: i64,
    /// The sum of every transaction (earn, redeem, expire, adjust, reversal).
    pub balance: i64,
}

/// One trip of `GET /trips/near`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NearTrip {
    /// The trip.
    pub trip_id: String,
    /// Its user.
    pub user_id: u64,
    /// Its mode (`bus`, `bike`, …).
    pub mode: String,
    /// From the query point to the trip's start.
    pub distance_from_m: f64,
    /// Its length.
    pub trip_distance_m: f64,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
}

/// One user of `GET /users/near`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NearUser {
    /// The user.
    pub user_id: u64,
    /// From the query point to their last known position.
    pub distance_m: f64,
    /// When that position was recorded (Unix ms).
    pub last_active_ms: i64,
}

/// A point and radius, checked.
#[derive(Debug, Clone, Copy)]
pub struct Around {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
    /// Radius, kilometres.
    pub radius_km: f64,
}

/// The largest radius a near query takes.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// Most rows a list query returns.
pub const MAX_LIMIT: u32 = 1000;
/// Most positions one cell query reads; past it, only the cells wholly inside what was read are
/// shown.
pub const CELL_READ_LIMIT: usize = 20_000;

/// The distance up to which `positions` (nearest first, cut at [`CELL_READ_LIMIT`]) are
/// complete, when they were cut.
fn read_cut(positions: &[(f64, f64, u64)], at: Around) -> Option<f64> {
    (positions.len() >= CELL_READ_LIMIT)
        .then(|| positions.last())
        .flatten()
        .map(|&(lat, lng, _)| haversine_m(at.lat, at.lng, lat, lng) / 1000.0)
}

impl Around {
    /// Checks each parameter, naming the first bad one. `None` means missing.
    pub fn new(
        lat: Option<f64>,
        lng: Option<f64>,
        radius_km: Option<f64>,
    ) -> Result<Around, QueryError> {
        let lat = lat.ok_or_else(|| invalid("lat", "required"))?;
        let lng = lng.ok_or_else(|| invalid("lng", "required"))?;
        let radius_km = radius_km.ok_or_else(|| invalid("radius_km", "required"))?;
        let max = crate::trip::MAX_LATITUDE;
        if !(lat.is_finite() && (-max..=max).contains(&lat)) {
            return Err(invalid(
                "lat",
                format!("{lat} is not a latitude (-{max} to {max})"),
            ));
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            return Err(invalid(
                "lng",
                format!("{lng} is not a longitude (-180 to 180)"),
            ));
        }
        if !(radius_km.is_finite() && radius_km > 0.0 && radius_km <= MAX_RADIUS_KM) {
            return Err(invalid(
                "radius_km",
                format!("{radius_km}: must be above 0 and at most {MAX_RADIUS_KM}"),
            ));
        }
        Ok(Around {
            lat,
            lng,
            radius_km,
        })
    }
}

/// Checks `days` (1-366).
pub fn check_days(days: u32) -> Result<u32, QueryError> {
    if (1..=366).contains(&days) {
        Ok(days)
    } else {
        Err(invalid("days", format!("{days}: must be 1 to 366")))
    }
}

/// Checks `limit` (1-1000).
pub fn check_limit(limit: u32) -> Result<u32, QueryError> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid(
            "limit",
            format!("{limit}: must be 1 to {MAX_LIMIT}"),
        ))
    }
}

const DAY_MS: i64 = 86_400_000;

impl Trips {
    async fn user_exists(&self, user_id: u64) -> Result<(), QueryError> {
        match self.user_status(user_id).await? {
            Some(_) => Ok(()),
            None => Err(QueryError::NotFound(format!("no user {user_id}"))),
        }
    }

    /// Trip count, distance, average duration and cost of a user's completed trips that
    /// started in the last `days` days. Cached under the user's tag.
    #[boxed]
    pub async fn user_stats(
        &self,
        user_id: u64,
        days: u32,
    ) -> Result<Cached<UserStats>, QueryError> {
        let days = check_days(days)?;
        let (value, cache) = self
            .cache()
            .get_or_load(&Self::user_tag(user_id), &format!("stats:{days}"), || {
                self.user_stats_from_source(user_id, days)
            })
            .await?;
        Ok(Cached { value, cache })
    }

    /// [`Trips::user_stats`] from MySQL, bypassing the cache.
    #[boxed]
    pub async fn user_stats_from_source(
        &self,
        user_id: u64,
        days: u32,
    ) -> Result<UserStats, QueryError> {
        let days = check_days(days)?;
        self.user_exists(user_id).await?;
        let dataset = &self.stores().dataset;
        let since = ms_to_naive(now_ms() - i64::from(days) * DAY_MS);
        let (trips, distance, avg, cost): (i64, f64, Option<f64>, f64) = dataset
            .timed(
                "user stats",
                sqlx::query_as(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(distance_m), 0) AS DOUBLE), \
                     CAST(AVG(duration_s) AS DOUBLE), CAST(COALESCE(SUM(cost), 0) AS DOUBLE) \
                     FROM trips WHERE user_id = ? AND status = 'completed' AND started_at >= ?",
                )
                .bind(user_id)
                .bind(since)
                .fetch_one(dataset.pool()),
            )
            .await?;
        Ok(UserStats {
            user_id,
            days,
            trips: trips.max(0) as u64,
            total_distance_m: distance,
            average_duration_s: avg,
            total_cost: cost,
        })
    }

    /// Earned, redeemed and balance of a user's points. Cached under the user's tag.
    #[boxed]
    pub async fn user_points(&self, user_id: u64) -> Result<Cached<UserPoints>, QueryError> {
        let (value, cache) = self
            .cache()
            .get_or_load(&Self::user_tag(user_id), "points", || async {
                self.user_exists(user_id).await?;
                let incentive = &self.stores().incentive;
                let (earned, redeemed, balance): (i64, i64, i64) = incentive
                    .timed(
                        "user points",
                        sqlx::query_as(
                            "SELECT \
                             CAST(COALESCE(SUM(CASE WHEN transaction_type = 'earn' THEN points END), 0) AS SIGNED), \
                             CAST(COALESCE(-SUM(CASE WHEN transaction_type = 'redeem' THEN points END), 0) AS SIGNED), \
                             CAST(COALESCE(SUM(points), 0) AS SIGNED) \
                             FROM points_transactions WHERE user_id = ?",
                        )
                        .bind(user_id)
                        .fetch_one(incentive.pool()),
                    )
                    .await?;
                Ok::<_, QueryError>(UserPoints {
                    user_id,
                    earned,
                    redeemed,
                    balance,
                })
            })
            .await?;
        Ok(Cached { value, cache })
    }

    /// Trips that started within the radius, nearest first (`$near` on the 2dsphere index).
    #[boxed]
    pub async fn trips_near(&self, at: Around, limit: u32) -> Result<Vec<NearTrip>, QueryError> {
        self.near_trips(at, limit, None).await
    }

    /// [`Trips::trips_near`] of one user's trips only.
    #[boxed]
    pub async fn own_trips_near(
        &self,
        user_id: u64,
        at: Around,
        limit: u32,
    ) -> Result<Vec<NearTrip>, QueryError> {
        self.near_trips(at, limit, Some(user_id)).await
    }

    async fn near_trips(
        &self,
        at: Around,
        limit: u32,
        user_id: Option<u64>,
    ) -> Result<Vec<NearTrip>, QueryError> {
        let limit = check_limit(limit)?;
        let mongo = &self.stores().documents;
        let mut filter = doc! {
            "startLocation": {
                "$near": {
                    "$geometry": {"type": "Point", "coordinates": [at.lng, at.lat]},
                    "$maxDistance": at.radius_km * 1000.0,
                }
            }
        };
        if let Some(u) = user_id {
            filter.insert("userId", u as i64);
        }
        let coll = mongo.database().collection::<Document>(TRAJECTORIES);
        let cursor = mongo
            .timed(
                "trips near",
                coll.find(filter)
                    .projection(doc! {"tripId": 1, "userId": 1, "mode": 1, "startLocation": 1, "distanceM": 1, "startedAt": 1})
                    .limit(i64::from(limit)),
            )
            .await?;
        let docs: Vec<Document> = mongo.timed("trips near", cursor.try_collect()).await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let coords = d
                .get_document("startLocation")
                .ok()
                .and_then(|l| l.get_array("coordinates").ok())
                .map(|c| c.iter().filter_map(Bson::as_f64).collect::<Vec<f64>>())
                .unwrap_or_default();
            let [lng, lat] = coords[..] else { continue };
            out.push(NearTrip {
                trip_id: d.get_str("tripId").unwrap_or_default().to_string(),
                user_id: number(&d, "userId") as u64,
                mode: d.get_str("mode").unwrap_or_default().to_string(),
                distance_from_m: haversine_m(at.lat, at.lng, lat, lng),
                trip_distance_m: number(&d, "distanceM"),
                started_at_ms: d
                    .get_datetime("startedAt")
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Users whose last completed trip ended within the radius and the active window, nearest
    /// first (Redis GEO).
    #[boxed]
    pub async fn users_near(&self, at: Around, limit: u32) -> Result<Vec<NearUser>, QueryError> {
        let limit = check_limit(limit)?;
        let (geo, active) = self.geo_keys();
        let redis = &self.stores().redis;
        let mut conn = redis.conn().await?;
        // Ask for more than `limit`: some may be outside the active window.
        let found: Vec<(String, f64)> = redis::cmd("GEOSEARCH")
            .arg(&geo)
            .arg("FROMLONLAT")
            .arg(at.lng)
            .arg(at.lat)
            .arg("BYRADIUS")
            .arg(at.radius_km)
            .arg("km")
            .arg("ASC")
            .arg("COUNT")
            .arg(limit.saturating_mul(4))
            .arg("WITHDIST")
            .query_async(&mut conn)
            .await
            .map_err(|e| redis.command_error("geosearch", &e))?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(&active);
        for (m, _) in &found {
            cmd.arg(m);
        }
        let seen: Vec<Option<f64>> = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| redis.command_error("zmscore", &e))?;
        let since = now_ms() - self.settings().active_window.as_millis() as i64;
        Ok(found
            .into_iter()
            .zip(seen)
            .filter_map(|((member, km), at)| {
                let at = at? as i64;
                (at >= since).then(|| NearUser {
                    user_id: member.parse().unwrap_or(0),
                    distance_m: km * 1000.0,
                    last_active_ms: at,
                })
            })
            .take(limit as usize)
            .collect())
    }

    /// Trip starts within the radius as cells of [`crate::cells`]: counts that cannot be
    /// inverted into anyone's trip.
    #[boxed]
    pub async fn trip_cells(&self, at: Around) -> Result<Vec<Cell>, QueryError> {
        let mongo = &self.stores().documents;
        let filter = doc! {
            "startLocation": {
                "$near": {
                    "$geometry": {"type": "Point", "coordinates": [at.lng, at.lat]},
                    "$maxDistance": (at.radius_km + cells::MARGIN_KM) * 1000.0,
                }
            }
        };
        let coll = mongo.database().collection::<Document>(TRAJECTORIES);
        let cursor = mongo
            .timed(
                "trip cells",
                coll.find(filter)
                    .projection(doc! {"userId": 1, "startLocation": 1})
                    .limit(CELL_READ_LIMIT as i64),
            )
            .await?;
        let docs: Vec<Document> = mongo.timed("trip cells", cursor.try_collect()).await?;
        let positions: Vec<(f64, f64, u64)> = docs
            .iter()
            .filter_map(|d| {
                let c = d
                    .get_document("startLocation")
                    .ok()?
                    .get_array("coordinates")
                    .ok()?;
                let (lng, lat) = (c.first()?.as_f64()?, c.get(1)?.as_f64()?);
                Some((lat, lng, number(d, "userId") as u64))
            })
            .collect();
        Ok(cells::count(
            positions.iter().copied(),
            (at.lat, at.lng, at.radius_km),
            read_cut(&positions, at),
        ))
    }

    /// Users' last positions within the radius and the active window, as cells of
    /// [`crate::cells`].
    #[boxed]
    pub async fn user_cells(&self, at: Around) -> Result<Vec<Cell>, QueryError> {
        let wide = Around {
            radius_km: at.radius_km + cells::MARGIN_KM,
            ..at
        };
        let (geo, _) = self.geo_keys();
        let found = self.users_near(wide, MAX_LIMIT).await?;
        let redis = &self.stores().redis;
        let mut conn = redis.conn().await?;
        let mut cmd = redis::cmd("GEOPOS");
        cmd.arg(&geo);
        for u in &found {
            cmd.arg(u.user_id.to_string());
        }
        let coords: Vec<Option<(f64, f64)>> = if found.is_empty() {
            Vec::new()
        } else {
            cmd.query_async(&mut conn)
                .await
                .map_err(|e| redis.command_error("geopos", &e))?
        };
        let positions: Vec<(f64, f64, u64)> = found
            .iter()
            .zip(coords)
            .filter_map(|(u, c)| c.map(|(lng, lat)| (lat, lng, u.user_id)))
            .collect();
        let cut = (found.len() as u32 >= MAX_LIMIT)
            .then(|| found.last().map(|u| u.distance_m / 1000.0))
            .flatten();
        Ok(cells::count(positions, (at.lat, at.lng, at.radius_km), cut))
    }
}

/// A numeric field whatever its BSON number type (0 when absent).
fn number(d: &Document, key: &str) -> f64 {
    match d.get(key) {
        Some(Bson::Int32(i)) => f64::from(*i),
        Some(Bson::Int64(i)) => *i as f64,
        Some(Bson::Double(x)) => *x,
        _ => 0.0,
    }
}
