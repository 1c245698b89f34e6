//! `tsp-job schedule …`: repeatable jobs.

use anyhow::{Context, bail};
use tsp_queue::{Missed, Schedule};

use crate::app::App;
use crate::cli::{MissedTicks, ScheduleArgs, ScheduleCommand};

/// The schedule `args` describe.
pub fn schedule_of(args: &ScheduleArgs) -> anyhow::Result<Schedule> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).context("--payload: not JSON")?;
    let every_ms = match &args.every {
        Some(text) => Some(
            tsp_config::parse_duration_text(text)
                .map_err(|e| anyhow::anyhow!("--every: {e}"))?
                .as_millis() as u64,
        ),
        None => None,
    };
    let missed = match args.missed {
        MissedTicks::Skip => Missed::Skip,
        MissedTicks::CatchUp => Missed::CatchUp {
            max: args.catch_up_max,
        },
    };
    Ok(Schedule {
        name: args.name.clone(),
        cron: args.cron.clone(),
        tz: args.tz.clone(),
        every_ms,
        job_type: args.job_type.clone(),
        payload,
        queue: args.queue.clone(),
        priority: args.priority,
        max_attempts: None,
        timeout_ms: None,
        missed,
        since: None,
        declared: false,
    })
}

/// Runs one `schedule` command; what to print.
pub async fn run(app: &App, cmd: &ScheduleCommand) -> anyhow::Result<String> {
    let schedules = app.schedules();
    Ok(match cmd {
        ScheduleCommand::Add(args) => {
            let s = schedule_of(args)?;
            if !app.registry().types().contains(&s.job_type) {
                bail!("--type: no job type `{}`", s.job_type);
            }
            serde_json::to_string_pretty(&schedules.put(s).await?)?
        }
        ScheduleCommand::List => serde_json::to_string_pretty(&schedules.list().await?)?,
        ScheduleCommand::Show { name } => match schedules.find(name).await? {
            Some(s) => serde_json::to_string_pretty(&s)?,
            None => bail!("no schedule named `{name}`"),
        },
        ScheduleCommand::Remove { name } => {
            schedules.remove(name).await?;
            format!("schedule {name} removed")
        }
        ScheduleCommand::Pause { name } => {
            schedules.set_paused(name, true).await?;
            format!("schedule {name} paused")
        }
        ScheduleCommand::Resume { name } => {
            schedules.set_paused(name, false).await?;
            format!("schedule {name} resumed")
        }
    })
}
