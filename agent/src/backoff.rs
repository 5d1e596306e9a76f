//! Delays between check-ins: the server's interval with ±10 % jitter, and exponential
//! backoff (5 s doubling to 15 min, also jittered) while the server is unreachable, so a
//! fleet that lost its server does not come back in lockstep.

use std::time::Duration;

use rand::Rng;

pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
/// Relative jitter applied to every delay.
pub const JITTER: f64 = 0.10;
/// Bounds for the server-chosen interval (a bad answer must not make us spin or vanish).
pub const MIN_INTERVAL_SECS: u64 = 1;
pub const MAX_INTERVAL_SECS: u64 = 24 * 60 * 60;

#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Delay before the next attempt after one more failure (without jitter).
    pub fn fail(&mut self) -> Duration {
        let delay = backoff_delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// `BACKOFF_BASE * 2^failures`, capped.
pub fn backoff_delay(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    BACKOFF_BASE.checked_mul(factor).unwrap_or(BACKOFF_CAP).min(BACKOFF_CAP)
}

/// The regular interval: the server's, else the configured one, else 60 s; clamped.
pub fn checkin_interval(server_secs: u64, configured_secs: Option<u64>) -> Duration {
    let secs = if server_secs > 0 {
        server_secs
    } else {
        configured_secs.unwrap_or(crate::config::DEFAULT_CHECKIN_INTERVAL_SECS)
    };
    Duration::from_secs(secs.clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS))
}

/// `delay` scaled by a uniform factor in `[1 - JITTER, 1 + JITTER]`.
pub fn jitter(delay: Duration, rng: &mut impl Rng) -> Duration {
    delay.mul_f64(rng.gen_range((1.0 - JITTER)..=(1.0 + JITTER)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| b.fail().as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 320, 640, 900, 900, 900, 900]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_CAP);
        assert_eq!(backoff_delay(40), BACKOFF_CAP);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(), BACKOFF_BASE);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(100);
        let samples: Vec<Duration> = (0..1000).map(|_| jitter(base, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d >= Duration::from_secs(90) && *d <= Duration::from_secs(110)));
        let min = samples.iter().min().unwrap();
        let max = samples.iter().max().unwrap();
        assert!(*max - *min > Duration::from_secs(15), "jitter should spread: {min:?}..{max:?}");
    }

    #[test]
    fn interval_prefers_server_then_config_then_default() {
        assert_eq!(checkin_interval(30, Some(10)), Duration::from_secs(30));
        assert_eq!(checkin_interval(0, Some(10)), Duration::from_secs(10));
        assert_eq!(checkin_interval(0, None), Duration::from_secs(60));
        assert_eq!(checkin_interval(u64::MAX, None), Duration::from_secs(MAX_INTERVAL_SECS));
    }
}
