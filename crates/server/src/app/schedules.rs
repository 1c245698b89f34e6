//! The schedules of repeatable jobs: the ones the service ships with, and the ones the
//! configuration declares (`schedules.<name>.*`, docs/queue.md#schedules).

use tsp_queue::{ScheduleError, Schedules};

use super::App;

impl App {
    /// The schedules of repeatable jobs, on every queue.
    pub fn schedules(&self) -> Schedules {
        let app = self.clone();
        Schedules::new(self.stores.queue.clone(), move |name| app.queue(name))
    }

    /// Adds the schedules the service ships with, unless one of that name exists (an operator
    /// may have changed or paused it): `analytics-rollup`, hourly at minute 5.
    pub async fn ensure_default_schedules(&self) -> Result<(), ScheduleError> {
        let schedules = self.schedules();
        if schedules.find("analytics-rollup").await?.is_none() {
            schedules
                .put(tsp_queue::Schedule {
                    name: "analytics-rollup".into(),
                    cron: Some("0 5 * * * *".into()),
                    tz: None,
                    every_ms: None,
                    job_type: tsp_mobility::analytics::JOB_TYPE.into(),
                    payload: serde_json::json!({}),
                    queue: "default".into(),
                    priority: 0,
                    max_attempts: None,
                    timeout_ms: None,
                    missed: tsp_queue::Missed::Skip,
                    since: None,
                    declared: false,
                })
                .await?;
        }
        Ok(())
    }

    /// Makes the stored schedules match the ones the configuration declares
    /// (`schedules.<name>.*`): a declared schedule that is missing or differs is put (its next
    /// tick from now); one that matches is left as it is, paused or not; one stored from an
    /// earlier declaration and declared no longer is removed. Schedules added by hand are left
    /// alone (docs/queue.md#schedules).
    pub async fn reconcile_schedules(&self) -> Result<Reconciled, ScheduleError> {
        let schedules = self.schedules();
        // One listing of what is stored, compared against every declared schedule.
        let stored: std::collections::HashMap<String, tsp_queue::Schedule> = schedules
            .list()
            .await?
            .into_iter()
            .map(|s| (s.schedule.name.clone(), s.schedule))
            .collect();
        let declared = &self.hub.config().schedules;
        let mut done = Reconciled::default();
        for (name, settings) in declared {
            let wanted = declared_schedule(name, settings)?;
            let same = stored.get(name).is_some_and(|s| {
                let mut s = s.clone();
                s.since = None;
                s == wanted
            });
            if !same {
                schedules.put(wanted).await?;
                done.put.push(name.clone());
            }
        }
        for (name, s) in &stored {
            if s.declared && !declared.contains_key(name) {
                schedules.remove(name).await?;
                done.removed.push(name.clone());
            }
        }
        done.removed.sort();
        Ok(done)
    }
}

/// What [`App::reconcile_schedules`] changed.
#[derive(Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Declared schedules stored because they were missing or differed.
    pub put: Vec<String>,
    /// Schedules of an earlier declaration, declared no longer, removed.
    pub removed: Vec<String>,
}

/// The schedule `schedules.<name>.*` declares.
fn declared_schedule(
    name: &str,
    s: &tsp_config::ScheduleSettings,
) -> Result<tsp_queue::Schedule, ScheduleError> {
    let invalid = |field, message: String| ScheduleError::Invalid { field, message };
    let every_ms = match &s.every {
        Some(text) => Some(
            tsp_config::parse_duration_text(text)
                .map_err(|e| invalid("every", format!("schedules.{name}.every: {e}")))?
                .as_millis() as u64,
        ),
        None => None,
    };
    let payload = serde_json::from_str(&s.payload)
        .map_err(|e| invalid("payload", format!("schedules.{name}.payload: {e}")))?;
    Ok(tsp_queue::Schedule {
        name: name.to_string(),
        cron: s.cron.clone(),
        tz: s.cron.as_ref().map(|_| s.tz.clone()),
        every_ms,
        job_type: s.job_type.clone().unwrap_or_default(),
        payload,
        queue: s.queue.clone(),
        priority: s.priority,
        max_attempts: None,
        timeout_ms: None,
        missed: if s.missed == "catch_up" {
            tsp_queue::Missed::CatchUp {
                max: s.catch_up_max,
            }
        } else {
            tsp_queue::Missed::Skip
        },
        since: None,
        declared: true,
    })
}
