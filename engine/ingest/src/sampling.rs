//! Pure decisions of the frame path, kept apart from GStreamer so they can be unit tested:
//! the analysis size ([`analysis_size`]), the fps gate ([`FpsGate`]) and the reconnect
//! backoff ([`Backoff`]).

use std::time::Duration;

/// The analysis resolution for a decoded `width`×`height` image whose pixels have aspect
/// `par_n/par_d`: the displayed aspect is kept, the longest side is at most `max_side`,
/// never upscaled, both sides even (rounded down) and at least 2.
pub fn analysis_size(width: u32, height: u32, par_n: i32, par_d: i32, max_side: u32) -> (u32, u32) {
    let (pn, pd) = if par_n > 0 && par_d > 0 {
        (f64::from(par_n), f64::from(par_d))
    } else {
        (1.0, 1.0)
    };
    // Displayed size with square pixels.
    let dw = f64::from(width.max(1)) * pn / pd;
    let dh = f64::from(height.max(1));
    let longest = dw.max(dh);
    let scale = (f64::from(max_side.max(2)) / longest).min(1.0);
    let even = |v: f64| -> u32 {
        let r = (v * scale / 2.0 + 1e-9).floor() as u32 * 2;
        r.max(2)
    };
    (even(dw), even(dh))
}

/// Keeps at most `fps` frames per second of stream time (a PTS-based gate: no clock,
/// no buffering, a few arithmetic operations per frame).
///
/// A frame passes when its PTS reaches the next due time (minus a tolerance of a tenth of
/// the interval, at most 5 ms, so a 25 fps stream capped at 25 fps keeps every frame
/// despite timestamp rounding).
/// Due times advance by whole intervals so the average rate is exact; after a gap or a
/// backwards jump (loop, reconnect) the gate restarts at the frame.
#[derive(Debug, Clone)]
pub struct FpsGate {
    interval_ns: u64,
    tolerance_ns: u64,
    next_due_ns: Option<u64>,
    last_pts_ns: Option<u64>,
}

impl FpsGate {
    /// A gate for `fps` frames per second (`fps <= 0` or not finite: passes everything).
    pub fn new(fps: f64) -> Self {
        let interval_ns = if fps.is_finite() && fps > 0.0 {
            (1e9 / fps) as u64
        } else {
            0
        };
        FpsGate {
            interval_ns,
            tolerance_ns: (interval_ns / 10).min(5_000_000),
            next_due_ns: None,
            last_pts_ns: None,
        }
    }

    /// Forgets the stream position (after a seek or a reconnect).
    pub fn reset(&mut self) {
        self.next_due_ns = None;
        self.last_pts_ns = None;
    }

    /// True when the frame with this PTS (nanoseconds) should be kept. Frames without a
    /// PTS are kept.
    pub fn admit(&mut self, pts_ns: Option<u64>) -> bool {
        if self.interval_ns == 0 {
            return true;
        }
        let Some(pts) = pts_ns else {
            return true;
        };
        if self.last_pts_ns.is_some_and(|last| pts < last) {
            // Time went backwards (loop, new segment): start again here.
            self.next_due_ns = None;
        }
        self.last_pts_ns = Some(pts);
        match self.next_due_ns {
            Some(due) if pts + self.tolerance_ns < due => false,
            Some(due) => {
                let next = due + self.interval_ns;
                // Far behind (a gap in the stream): do not burst to catch up.
                self.next_due_ns = Some(if pts >= next {
                    pts + self.interval_ns
                } else {
                    next
                });
                true
            }
            None => {
                self.next_due_ns = Some(pts + self.interval_ns);
                true
            }
        }
    }
}

/// Exponential reconnect backoff with "equal jitter": attempt `n` waits a random time in
/// `[d/2, d]` where `d = min(max, initial * 2^(n-1))`. The jitter keeps many cameras that
/// lost one switch from reconnecting in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`; `seed` varies the jitter per camera.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            rng: seed | 1,
        }
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let d = self.initial.saturating_mul(1u32 << exp).min(self.max);
        // xorshift64*: enough randomness for jitter, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + 0.5 * frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_keeps_aspect_even_and_never_upscales() {
        assert_eq!(analysis_size(426, 240, 1, 1, 1280), (426, 240));
        assert_eq!(analysis_size(1920, 1080, 1, 1, 1280), (1280, 720));
        assert_eq!(analysis_size(1080, 1920, 1, 1, 640), (360, 640));
        assert_eq!(analysis_size(1920, 1080, 1, 1, 427), (426, 240));
        // Anamorphic 720x576 with 16:15 pixels displays as 768x576.
        assert_eq!(analysis_size(720, 576, 16, 15, 4096), (768, 576));
        let (w, h) = analysis_size(1001, 333, 1, 1, 500);
        assert!(w % 2 == 0 && h % 2 == 0 && w <= 500);
    }

    fn kept(fps: f64, src_fps: f64, n: u64) -> usize {
        let mut g = FpsGate::new(fps);
        (0..n)
            .filter(|i| g.admit(Some((*i as f64 * 1e9 / src_fps) as u64)))
            .count()
    }

    #[test]
    fn gate_keeps_the_requested_rate() {
        assert_eq!(kept(25.0, 25.0, 250), 250);
        assert_eq!(kept(1.0, 25.0, 250), 10);
        assert_eq!(kept(5.0, 29.97, 300), 50);
        assert_eq!(kept(120.0, 29.97, 899), 899);
        assert_eq!(kept(0.0, 25.0, 100), 100);
    }

    #[test]
    fn gate_restarts_after_time_goes_backwards() {
        let mut g = FpsGate::new(1.0);
        assert!(g.admit(Some(5_000_000_000)));
        assert!(!g.admit(Some(5_500_000_000)));
        assert!(g.admit(Some(0)));
        assert!(!g.admit(Some(100_000_000)));
        assert!(g.admit(None));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_respects_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4), 42);
        for attempt in 1..20 {
            let d = b.delay(attempt);
            let full = Duration::from_millis(500 * (1u64 << (attempt - 1).min(3)));
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}
