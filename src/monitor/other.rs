//! Platforms other than Linux: the commands compile and say they are not supported.

use super::{Facade, MonitorError, Traced};

pub fn system() -> Result<Box<dyn Facade>, MonitorError> {
    Err(MonitorError::Unsupported)
}

pub fn spawn_traced(_command: tokio::process::Command) -> Result<Traced, MonitorError> {
    Err(MonitorError::Unsupported)
}
