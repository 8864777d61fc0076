//! The retry schedule: exponential backoff from `queue.retry_initial`, doubling per attempt,
//! capped at `queue.retry_max`; after `queue.max_age` the message fails for good.

use std::time::Duration;

use super::Scheduler;
use crate::config::QueueConfig;

/// The delay before attempt number `attempts + 1`, after `attempts` failed ones (≥ 1).
pub fn backoff(config: &QueueConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    config
        .retry_initial
        .checked_mul(factor)
        .unwrap_or(config.retry_max)
        .min(config.retry_max)
}

/// Re-schedules `id` once `delay` has passed (a timer task; the entry itself is on disk, so a
/// restart in between loses nothing: startup schedules every queued entry).
pub(super) fn schedule_after(scheduler: Scheduler, id: String, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        scheduler.now(id);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let c = QueueConfig {
            max_age: Duration::from_secs(5 * 86400),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
        };
        assert_eq!(backoff(&c, 1), Duration::from_secs(60));
        assert_eq!(backoff(&c, 2), Duration::from_secs(120));
        assert_eq!(backoff(&c, 3), Duration::from_secs(240));
        assert_eq!(backoff(&c, 10), Duration::from_secs(3600));
        assert_eq!(backoff(&c, 200), Duration::from_secs(3600));
    }
}
