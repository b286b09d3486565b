//! The progress line of long commands (`lookout eval`, `lookout eval-events`): count,
//! share, rate and estimated time left, formatted here (no I/O) so every command says it
//! the same way.

use std::time::{Duration, Instant};

/// Progress of `total` items of work started when this was made.
#[derive(Debug, Clone)]
pub struct Progress {
    total: usize,
    unit: &'static str,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// Starts the clock for `total` items called `unit` (`images`, `frames`).
    pub fn new(total: usize, unit: &'static str) -> Progress {
        Progress {
            total,
            unit,
            started: Instant::now(),
            last: None,
        }
    }

    /// `done/total (p %), r unit/s, ETA t` after `elapsed`; the ETA is `-` until the rate
    /// is known.
    pub fn line_at(&self, done: usize, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 && done > 0 {
            eta_text(self.total.saturating_sub(done) as f64 / rate)
        } else {
            "-".to_string()
        };
        format!(
            "{done}/{} ({:.0} %), {rate:.1} {}/s, ETA {eta}",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            self.unit
        )
    }

    /// [`Progress::line_at`] now.
    pub fn line(&self, done: usize) -> String {
        self.line_at(done, self.started.elapsed())
    }

    /// [`Progress::line`] when it is worth drawing: the first item, the last, and then at
    /// most 4 times a second.
    pub fn tick(&mut self, done: usize) -> Option<String> {
        let now = Instant::now();
        let due = done == self.total
            || self
                .last
                .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(250));
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(self.line(done))
    }
}

/// `42 s`, `3 min 20 s`, `2 h 05 min`.
fn eta_text(s: f64) -> String {
    let s = s.round().max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta() {
        let p = Progress::new(100, "images");
        assert_eq!(
            p.line_at(25, Duration::from_secs(10)),
            "25/100 (25 %), 2.5 images/s, ETA 30 s"
        );
        assert_eq!(
            p.line_at(0, Duration::from_secs(1)),
            "0/100 (0 %), 0.0 images/s, ETA -"
        );
        assert_eq!(
            p.line_at(1, Duration::from_secs(100)),
            "1/100 (1 %), 0.0 images/s, ETA 2 h 45 min"
        );
        assert_eq!(
            p.line_at(50, Duration::from_secs(100)),
            "50/100 (50 %), 0.5 images/s, ETA 1 min 40 s"
        );
        let mut p = Progress::new(3, "frames");
        assert!(p.tick(1).is_some());
        assert!(p.tick(2).is_none(), "within 250 ms of the last line");
        assert!(p.tick(3).is_some(), "the last item is always shown");
    }
}
