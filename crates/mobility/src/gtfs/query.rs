//! Queries on a feed's live version: stops near a point (Redis GEO, details from MySQL through
//! the cache), departures from a stop on a service day, routes (docs/gtfs.md#queries).

use async_recursion::async_recursion as boxed;
use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::fields::format_time;
use super::sync::geo_key;
use super::versions;
use super::{Gtfs, GtfsError};

/// A stop's details.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopInfo {
    /// `stop_id`.
    pub stop_id: String,
    /// `stop_name`.
    pub name: Option<String>,
    /// `stop_code`.
    pub code: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lng: Option<f64>,
    /// 0 stop, 1 station, 2 entrance, 3 node, 4 boarding area.
    pub location_type: u8,
    /// The station it belongs to.
    pub parent_station: Option<String>,
}

/// A stop and its distance from the point asked about.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NearStop {
    /// The stop.
    #[serde(flatten)]
    pub stop: StopInfo,
    /// Metres from the point.
    pub distance_m: f64,
}

/// Stops near a point, nearest first, all of one version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NearStops {
    /// The feed.
    pub feed: String,
    /// The version answered from.
    pub version: u32,
    /// The stops.
    pub stops: Vec<NearStop>,
}

/// One departure from a stop.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Departure {
    /// The service day the trip belongs to (the day before, for a trip past midnight).
    pub service_date: NaiveDate,
    /// The departure as the feed writes it: seconds after the service day's start, `HH:MM:SS`
    /// (may pass 24:00).
    pub departure_time: String,
    /// The wall-clock time on the date asked about, `HH:MM:SS`.
    pub clock_time: String,
    /// `trip_id`.
    pub trip_id: String,
    /// `trip_headsign`.
    pub headsign: Option<String>,
    /// `route_id`.
    pub route_id: String,
    /// `route_short_name`.
    pub route_short_name: Option<String>,
    /// `route_long_name`.
    pub route_long_name: Option<String>,
}

/// Departures from a stop on a date from a time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Departures {
    /// The feed.
    pub feed: String,
    /// The version answered from.
    pub version: u32,
    /// The stop.
    pub stop: StopInfo,
    /// The date asked about.
    pub date: NaiveDate,
    /// The departures, in time order.
    pub departures: Vec<Departure>,
}

/// A route.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteInfo {
    /// `route_id`.
    pub route_id: String,
    /// `agency_id` ("" for a feed's single agency without one).
    pub agency_id: String,
    /// `route_short_name`.
    pub short_name: Option<String>,
    /// `route_long_name`.
    pub long_name: Option<String>,
    /// GTFS route type (3 bus, 0 tram, 2 rail, 4 ferry, …).
    pub route_type: u16,
    /// `route_color`.
    pub color: Option<String>,
    /// Trips of the route.
    pub trips: u64,
}

/// A route with its agency and the stops of its longest trip, in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RouteDetail {
    /// The feed.
    pub feed: String,
    /// The version answered from.
    pub version: u32,
    /// The route.
    pub route: RouteInfo,
    /// The agency's name.
    pub agency_name: String,
    /// The stops of the route's trip with the most stops.
    pub stops: Vec<StopInfo>,
}

const STOP_COLUMNS: &str = "stop_id, stop_name, stop_code, CAST(stop_lat AS DOUBLE), \
     CAST(stop_lon AS DOUBLE), location_type, parent_station";

fn stop_from(r: &sqlx::mysql::MySqlRow) -> StopInfo {
    StopInfo {
        stop_id: r.get(0),
        name: r.get(1),
        code: r.get(2),
        lat: r.get(3),
        lng: r.get(4),
        location_type: r.get(5),
        parent_station: r.get(6),
    }
}

impl Gtfs {
    /// The live version of `feed` (`None`: the default feed).
    #[boxed]
    pub async fn live_version(&self, feed: Option<&str>) -> Result<(String, u32), GtfsError> {
        let feed = feed.unwrap_or(&self.settings.feed).to_string();
        match versions::live(&self.mysql, &feed).await? {
            Some(v) => Ok((feed, v)),
            None => Err(GtfsError::NotFound(format!(
                "feed {feed:?} has no live version (import one with `tsp-job gtfs import`)"
            ))),
        }
    }

    /// Stops within `radius_km` of a point, nearest first (at most `limit`).
    #[boxed]
    pub async fn stops_near(
        &self,
        feed: Option<&str>,
        lat: f64,
        lng: f64,
        radius_km: f64,
        limit: u32,
    ) -> Result<NearStops, GtfsError> {
        check_point(lat, lng, radius_km, limit)?;
        let (feed, version) = self.live_version(feed).await?;
        let mut conn = self.redis.conn().await?;
        let found: Vec<(String, f64)> = redis::cmd("GEOSEARCH")
            .arg(geo_key(&self.redis, &feed, version))
            .arg("FROMLONLAT")
            .arg(lng)
            .arg(lat)
            .arg("BYRADIUS")
            .arg(radius_km)
            .arg("km")
            .arg("ASC")
            .arg("COUNT")
            .arg(limit)
            .arg("WITHDIST")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis.command_error("near stops", &e))?;
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        let details = self.stop_details(&feed, version, &ids).await?;
        let stops = found
            .iter()
            .zip(details)
            .filter_map(|((_, km), stop)| {
                stop.map(|stop| NearStop {
                    stop,
                    distance_m: (km * 1000.0).round(),
                })
            })
            .collect();
        Ok(NearStops {
            feed,
            version,
            stops,
        })
    }

    /// Details of `ids` in `version`, in order (`None` for an id it lacks), each through the
    /// cache when there is one: a version's rows never change, so entries need no invalidation.
    async fn stop_details(
        &self,
        feed: &str,
        version: u32,
        ids: &[&str],
    ) -> Result<Vec<Option<StopInfo>>, GtfsError> {
        let tag = format!("gtfs:{feed}:v{version}");
        let lookups = ids.iter().map(|id| {
            let tag = tag.clone();
            async move {
                match &self.cache {
                    Some(cache) => cache
                        .get_or_load(&tag, &format!("stop:{id}"), || self.stop(version, id))
                        .await
                        .map(|(s, _)| s),
                    None => self.stop(version, id).await,
                }
            }
        });
        futures::future::try_join_all(lookups).await
    }

    async fn stop(&self, version: u32, id: &str) -> Result<Option<StopInfo>, GtfsError> {
        let sql = format!("SELECT {STOP_COLUMNS} FROM stops WHERE version_id = ? AND stop_id = ?");
        let row = self
            .mysql
            .timed(
                "select stop",
                sqlx::query(&sql)
                    .bind(version)
                    .bind(id)
                    .fetch_optional(self.mysql.pool()),
            )
            .await?;
        Ok(row.as_ref().map(stop_from))
    }

    /// The live version's stops a vehicle serves (location_type 0, with coordinates).
    #[boxed]
    pub async fn stops(
        &self,
        feed: Option<&str>,
    ) -> Result<(String, u32, Vec<StopInfo>), GtfsError> {
        let (feed, version) = self.live_version(feed).await?;
        let sql = format!(
            "SELECT {STOP_COLUMNS} FROM stops WHERE version_id = ? AND location_type = 0 \
             AND stop_lat IS NOT NULL ORDER BY stop_id"
        );
        let rows = self
            .mysql
            .timed(
                "select stops",
                sqlx::query(&sql).bind(version).fetch_all(self.mysql.pool()),
            )
            .await?;
        Ok((feed, version, rows.iter().map(stop_from).collect()))
    }

    /// Departures from `stop_id` on `date` from `from_secs` after midnight: trips of that
    /// service day, and trips of the day before that run past midnight; calendar_dates
    /// exceptions applied.
    #[boxed]
    pub async fn departures(
        &self,
        feed: Option<&str>,
        stop_id: &str,
        date: NaiveDate,
        from_secs: u32,
        limit: u32,
    ) -> Result<Departures, GtfsError> {
        if !(1..=500).contains(&limit) {
            return Err(GtfsError::BadRequest {
                field: "limit",
                message: "must be from 1 to 500".into(),
            });
        }
        let (feed, version) = self.live_version(feed).await?;
        let stop = self
            .stop(version, stop_id)
            .await?
            .ok_or_else(|| GtfsError::NotFound(format!("no stop {stop_id:?} in feed {feed:?}")))?;
        let mut all = self
            .departures_of_day(version, stop_id, date, from_secs, 0, limit)
            .await?;
        if let Some(yesterday) = date.pred_opt() {
            all.extend(
                self.departures_of_day(
                    version,
                    stop_id,
                    yesterday,
                    from_secs + 86_400,
                    86_400,
                    limit,
                )
                .await?,
            );
        }
        all.sort_by_key(|(secs, d)| (*secs, d.trip_id.clone()));
        all.truncate(limit as usize);
        Ok(Departures {
            feed,
            version,
            stop,
            date,
            departures: all.into_iter().map(|(_, d)| d).collect(),
        })
    }

    /// Departures of service day `day` at or after `from` (seconds after its start); each
    /// with its clock time on the date asked about (`shift` seconds earlier).
    async fn departures_of_day(
        &self,
        version: u32,
        stop_id: &str,
        day: NaiveDate,
        from: u32,
        shift: u32,
        limit: u32,
    ) -> Result<Vec<(u32, Departure)>, GtfsError> {
        let weekday = match day.weekday() {
            Weekday::Mon => "monday",
            Weekday::Tue => "tuesday",
            Weekday::Wed => "wednesday",
            Weekday::Thu => "thursday",
            Weekday::Fri => "friday",
            Weekday::Sat => "saturday",
            Weekday::Sun => "sunday",
        };
        let sql = format!(
            "SELECT st.departure_secs, t.trip_id, t.trip_headsign, r.route_id, \
               r.route_short_name, r.route_long_name \
             FROM stop_times st \
             JOIN trips t ON t.version_id = st.version_id AND t.trip_id = st.trip_id \
             JOIN routes r ON r.version_id = t.version_id AND r.route_id = t.route_id \
             WHERE st.version_id = ? AND st.stop_id = ? AND st.departure_secs >= ? AND ( \
               (EXISTS (SELECT 1 FROM calendar c WHERE c.version_id = t.version_id \
                   AND c.service_id = t.service_id AND ? BETWEEN c.start_date AND c.end_date \
                   AND c.{weekday} = 1) \
                AND NOT EXISTS (SELECT 1 FROM calendar_dates d WHERE d.version_id = t.version_id \
                   AND d.service_id = t.service_id AND d.date = ? AND d.exception_type = 2)) \
               OR EXISTS (SELECT 1 FROM calendar_dates d WHERE d.version_id = t.version_id \
                   AND d.service_id = t.service_id AND d.date = ? AND d.exception_type = 1)) \
             ORDER BY st.departure_secs, t.trip_id LIMIT ?"
        );
        let rows = self
            .mysql
            .timed(
                "departures",
                sqlx::query(&sql)
                    .bind(version)
                    .bind(stop_id)
                    .bind(from)
                    .bind(day)
                    .bind(day)
                    .bind(day)
                    .bind(limit)
                    .fetch_all(self.mysql.pool()),
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let secs: u32 = r.get(0);
                let clock = secs - shift;
                (
                    clock,
                    Departure {
                        service_date: day,
                        departure_time: format_time(secs),
                        clock_time: format_time(clock),
                        trip_id: r.get(1),
                        headsign: r.get(2),
                        route_id: r.get(3),
                        route_short_name: r.get(4),
                        route_long_name: r.get(5),
                    },
                )
            })
            .collect())
    }

    /// Every route of the live version, by short name.
    #[boxed]
    pub async fn routes(
        &self,
        feed: Option<&str>,
    ) -> Result<(String, u32, Vec<RouteInfo>), GtfsError> {
        let (feed, version) = self.live_version(feed).await?;
        let routes = self.route_rows(version, None).await?;
        Ok((feed, version, routes))
    }

    async fn route_rows(
        &self,
        version: u32,
        id: Option<&str>,
    ) -> Result<Vec<RouteInfo>, GtfsError> {
        let sql = format!(
            "SELECT r.route_id, r.agency_id, r.route_short_name, r.route_long_name, r.route_type, \
               r.route_color, (SELECT COUNT(*) FROM trips t WHERE t.version_id = r.version_id \
               AND t.route_id = r.route_id) \
             FROM routes r WHERE r.version_id = ? {} \
             ORDER BY r.route_short_name, r.route_id",
            if id.is_some() {
                "AND r.route_id = ?"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql).bind(version);
        if let Some(id) = id {
            q = q.bind(id);
        }
        let rows = self
            .mysql
            .timed("routes", q.fetch_all(self.mysql.pool()))
            .await?;
        Ok(rows
            .iter()
            .map(|r| RouteInfo {
                route_id: r.get(0),
                agency_id: r.get(1),
                short_name: r.get(2),
                long_name: r.get(3),
                route_type: r.get(4),
                color: r.get(5),
                trips: r.get::<i64, _>(6) as u64,
            })
            .collect())
    }

    /// One route of the live version, with its agency and the stops of its longest trip.
    #[boxed]
    pub async fn route(&self, feed: Option<&str>, id: &str) -> Result<RouteDetail, GtfsError> {
        let (feed, version) = self.live_version(feed).await?;
        let route = self
            .route_rows(version, Some(id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| GtfsError::NotFound(format!("no route {id:?} in feed {feed:?}")))?;
        let agency_name: String = self
            .mysql
            .timed(
                "route agency",
                sqlx::query_scalar(
                    "SELECT agency_name FROM agency WHERE version_id = ? AND agency_id = ?",
                )
                .bind(version)
                .bind(&route.agency_id)
                .fetch_one(self.mysql.pool()),
            )
            .await?;
        let sql = format!(
            "SELECT {} FROM stop_times st JOIN stops s ON s.version_id = st.version_id \
               AND s.stop_id = st.stop_id \
             WHERE st.version_id = ? AND st.trip_id = ( \
               SELECT t.trip_id FROM trips t JOIN stop_times x ON x.version_id = t.version_id \
                 AND x.trip_id = t.trip_id \
               WHERE t.version_id = ? AND t.route_id = ? \
               GROUP BY t.trip_id ORDER BY COUNT(*) DESC, t.trip_id LIMIT 1) \
             ORDER BY st.stop_sequence",
            "s.stop_id, s.stop_name, s.stop_code, CAST(s.stop_lat AS DOUBLE), \
             CAST(s.stop_lon AS DOUBLE), s.location_type, s.parent_station"
        );
        let rows = self
            .mysql
            .timed(
                "route stops",
                sqlx::query(&sql)
                    .bind(version)
                    .bind(version)
                    .bind(id)
                    .fetch_all(self.mysql.pool()),
            )
            .await?;
        Ok(RouteDetail {
            feed,
            version,
            route,
            agency_name,
            stops: rows.iter().map(stop_from).collect(),
        })
    }
}

fn check_point(lat: f64, lng: f64, radius_km: f64, limit: u32) -> Result<(), GtfsError> {
    let bad = |field, message: &str| {
        Err(GtfsError::BadRequest {
            field,
            message: message.to_string(),
        })
    };
    let max = crate::trip::MAX_LATITUDE;
    if !(lat.is_finite() && (-max..=max).contains(&lat)) {
        return bad("lat", "must be from -85.05112878 to 85.05112878");
    }
    if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
        return bad("lng", "must be from -180 to 180");
    }
    if !(radius_km.is_finite() && radius_km > 0.0 && radius_km <= 100.0) {
        return bad("radius_km", "must be above 0 and at most 100");
    }
    if !(1..=500).contains(&limit) {
        return bad("limit", "must be from 1 to 500");
    }
    Ok(())
}

/// The date (`YYYY-MM-DD`, default `today`) and time (`HH:MM` or `HH:MM:SS`, default midnight)
/// of a departures request, as a date and seconds after midnight.
pub fn departure_window(
    date: Option<&str>,
    from: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, u32), GtfsError> {
    let date = match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| GtfsError::BadRequest {
            field: "date",
            message: format!("{d:?} is not a YYYY-MM-DD date"),
        })?,
        None => today,
    };
    let from = match from {
        Some(t) => {
            let full = if t.matches(':').count() == 1 {
                format!("{t}:00")
            } else {
                t.to_string()
            };
            match super::fields::parse_time(&full) {
                Ok(secs) if secs < 86_400 => secs,
                _ => {
                    return Err(GtfsError::BadRequest {
                        field: "from",
                        message: format!("{t:?} is not a time of day (HH:MM or HH:MM:SS)"),
                    });
                }
            }
        }
        None => 0,
    };
    Ok((date, from))
}
