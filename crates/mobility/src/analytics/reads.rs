//! Reading the rollups, through the two-level cache (tag `analytics`, invalidated by every
//! rollup). Ranges are checked and normalised first, so cache keys stay bounded.

use std::collections::BTreeMap;

use async_recursion::async_recursion as boxed;
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};
use tsp_hub::Level;

use super::{DAILY, ModeDay, ModeHour, TAG, USER_DAILY, USERS_PER_BUCKET, UserBucket, UserDay};
use crate::complete::Trips;
use crate::queries::QueryError;

/// The most days one query spans.
pub const MAX_DAYS: i64 = 366;

/// A checked range of days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
}

fn invalid(field: &str, message: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

impl DayRange {
    /// `from` and `to` as `YYYY-MM-DD`; `to` defaults to today, `from` to 30 days before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<DayRange, QueryError> {
        let day = |field: &str, text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| invalid(field, format!("`{text}` is not YYYY-MM-DD")))
        };
        let to = to.map(|t| day("to", t)).transpose()?;
        let from = from.map(|f| day("from", f)).transpose()?;
        DayRange::new(from, to)
    }

    /// `from` to `to`; `to` defaults to today, `from` to 30 days before `to`.
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<DayRange, QueryError> {
        let to = to.unwrap_or_else(|| Utc::now().date_naive());
        let from = match from {
            Some(f) => f,
            // The earliest dates have no day 29 days before them.
            None => to
                .checked_sub_signed(chrono::Duration::days(29))
                .ok_or_else(|| invalid("to", "too early"))?,
        };
        if from > to {
            return Err(invalid("from", "after `to`"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(invalid(
                "to",
                format!("at most {MAX_DAYS} days from `from`"),
            ));
        }
        Ok(DayRange { from, to })
    }

    /// The last `days` days, today included.
    pub fn last(days: u32) -> Result<DayRange, QueryError> {
        if !(1..=MAX_DAYS as u32).contains(&days) {
            return Err(invalid("days", format!("1 to {MAX_DAYS}")));
        }
        let to = Utc::now().date_naive();
        Ok(DayRange {
            from: to - chrono::Duration::days(i64::from(days) - 1),
            to,
        })
    }

    fn filter(&self) -> Document {
        doc! {"day": {"$gte": super::day_key(self.from), "$lte": super::day_key(self.to)}}
    }

    fn key(&self) -> String {
        format!("{}:{}", super::day_key(self.from), super::day_key(self.to))
    }
}

/// One mode's totals over a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeTotals {
    /// The mode.
    pub mode: String,
    /// Completed trips.
    pub trips: u64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their points.
    pub points: i64,
}

impl Trips {
    async fn rollup_docs<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<T>, QueryError> {
        let mongo = &self.stores().documents;
        let coll = mongo.database().collection::<Document>(collection);
        let mut find = coll.find(filter).sort(doc! {"day": 1, "_id": 1});
        if let Some(p) = projection {
            find = find.projection(p);
        }
        let cursor = mongo.timed("analytics", find).await?;
        let docs: Vec<Document> = mongo.timed("analytics", cursor.try_collect()).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| mongodb::bson::from_document(d).ok())
            .collect())
    }

    /// Day × mode rollups in `range`, for one mode or all.
    #[boxed]
    pub async fn daily(
        &self,
        range: DayRange,
        mode: Option<&str>,
    ) -> Result<(Vec<ModeDay>, Level), QueryError> {
        if let Some(m) = mode
            && !crate::trip::MODES.contains(&m)
        {
            return Err(invalid("mode", format!("unknown mode `{m}`")));
        }
        let key = format!("daily:{}:{}", range.key(), mode.unwrap_or("*"));
        self.cache()
            .get_or_load(TAG, &key, || async {
                let mut filter = range.filter();
                if let Some(m) = mode {
                    filter.insert("mode", m);
                }
                // The hours stay out of range queries: `hourly` reads them for one day.
                self.rollup_docs::<ModeDay>(DAILY, filter, Some(doc! {"hours": 0}))
                    .await
            })
            .await
    }

    /// Hour × mode rollups of one day, by hour then mode.
    #[boxed]
    pub async fn hourly(&self, day: NaiveDate) -> Result<(Vec<ModeHour>, Level), QueryError> {
        let range = DayRange { from: day, to: day };
        self.cache()
            .get_or_load(TAG, &format!("hourly:{}", range.key()), || async {
                let days = self
                    .rollup_docs::<ModeDay>(DAILY, range.filter(), None)
                    .await?;
                let mut out: Vec<ModeHour> = days
                    .into_iter()
                    .flat_map(|d| {
                        let (day, mode) = (d.day, d.mode);
                        d.hours.into_iter().map(move |h| ModeHour {
                            day: day.clone(),
                            hour: h.hour,
                            mode: mode.clone(),
                            trips: h.trips,
                            distance_m: h.distance_m,
                            points: h.points,
                        })
                    })
                    .collect();
                out.sort_by(|a, b| a.hour.cmp(&b.hour).then(a.mode.cmp(&b.mode)));
                Ok::<_, QueryError>(out)
            })
            .await
    }

    /// Totals per mode over the last `days` days, most trips first.
    #[boxed]
    pub async fn mode_totals(&self, days: u32) -> Result<(Vec<ModeTotals>, Level), QueryError> {
        let (rows, level) = self.daily(DayRange::last(days)?, None).await?;
        let mut by_mode: BTreeMap<String, ModeTotals> = BTreeMap::new();
        for r in rows {
            let t = by_mode.entry(r.mode.clone()).or_insert(ModeTotals {
                mode: r.mode,
                trips: 0,
                distance_m: 0.0,
                points: 0,
            });
            t.trips += r.trips;
            t.distance_m += r.distance_m;
            t.points += r.points;
        }
        let mut out: Vec<ModeTotals> = by_mode.into_values().collect();
        out.sort_by(|a, b| b.trips.cmp(&a.trips).then(a.mode.cmp(&b.mode)));
        Ok((out, level))
    }

    /// Every user's day rollups in `range` (the engagement report sums them).
    pub(crate) async fn all_user_days(&self, range: DayRange) -> Result<Vec<UserDay>, QueryError> {
        let buckets = self
            .rollup_docs::<UserBucket>(USER_DAILY, range.filter(), None)
            .await?;
        Ok(UserBucket::flatten(buckets))
    }

    /// User `user`'s day rollups in `range`.
    #[boxed]
    pub async fn user_daily(
        &self,
        user: u64,
        range: DayRange,
    ) -> Result<(Vec<UserDay>, Level), QueryError> {
        let key = format!("user:{user}:{}", range.key());
        self.cache()
            .get_or_load(TAG, &key, || async {
                let mut filter = range.filter();
                filter.insert("bucket", (user / USERS_PER_BUCKET) as i64);
                let only = doc! {"day": 1, "bucket": 1, format!("users.{user}"): 1};
                let buckets = self
                    .rollup_docs::<UserBucket>(USER_DAILY, filter, Some(only))
                    .await?;
                Ok::<_, QueryError>(UserBucket::flatten(buckets))
            })
            .await
    }
}
