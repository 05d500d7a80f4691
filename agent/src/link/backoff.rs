//! Exponential backoff with jitter for reconnecting to the coordinator.

use std::time::Duration;

/// Delays of 1 s, 2 s, 4 s … up to a ceiling, each drawn uniformly from
/// the upper half of its step ("equal jitter"), so that agents cut off
/// together do not reconnect together.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, doubles up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The agent's default: 1 s doubling up to 60 s.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[ceiling / 2, ceiling]`; then doubles
    /// the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        let mut b = [0u8; 8];
        crate::rng::fill(&mut b);
        let jitter = if span == 0 {
            0
        } else {
            u64::from_le_bytes(b) % (span + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// After a success: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were taken since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn jitter_spreads_agents_apart() {
        let delays: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(8));
                b.next_delay().as_millis()
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
