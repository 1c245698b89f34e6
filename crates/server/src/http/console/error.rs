//! Why a console view could not read what it shows: said on the page, in place of the part it
//! could not fill (the rest of the page still renders).

use std::fmt;

use tsp_hub::HubError;
use tsp_queue::{QueueError, ScheduleError};

/// A console view's failure to read a store or a setting.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConsoleError {
    /// A store did not answer, or answered with an error.
    #[error(transparent)]
    Store(#[from] HubError),
    /// The queue refused or failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The schedules could not be read or changed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The configuration switches off what the view would show.
    #[error("{0}")]
    Off(Unavailable),
}

/// What the configuration switched off, and the key that did.
#[derive(Debug)]
pub(super) struct Unavailable {
    /// What is off.
    pub(super) what: &'static str,
    /// The key that switches it.
    pub(super) key: &'static str,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} are off ({})", self.what, self.key)
    }
}
