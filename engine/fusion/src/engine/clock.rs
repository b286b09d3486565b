//! Time bases: a camera's clock, live time, the clock at a place or of an incident, and
//! the hold of hotspots ahead of a replay.

use super::*;

impl Fusion {
    /// Live time: the newest clock of the cameras that are not replays. Live cameras share
    /// it, so a camera that went offline (its own clock stopped) does not freeze its
    /// incidents or its place.
    pub(super) fn live_clock(&self) -> Option<UtcTime> {
        self.clocks
            .iter()
            .filter(|(c, _)| !self.replayed.contains(*c))
            .map(|(_, t)| *t)
            .max()
    }

    /// A camera's time base: its own clock when it replays a past date, live time otherwise.
    pub(super) fn camera_clock(&self, camera: &str) -> Option<UtcTime> {
        if self.replayed.contains(camera) {
            self.clocks.get(camera).copied()
        } else {
            self.live_clock()
        }
    }

    /// The event time of a set of cameras: the newest of their time bases and the shared
    /// watermark.
    pub(super) fn clock_of(&self, cameras: &[CameraId]) -> Option<UtcTime> {
        cameras
            .iter()
            .filter_map(|c| self.camera_clock(c))
            .chain(self.watermark)
            .max()
    }

    /// The event time at a place: the newest time base of the cameras watching it. A place
    /// no camera watches follows live time (or, with only replays, the newest clock).
    pub(super) fn clock_at(&self, p: &GeoPoint) -> Option<UtcTime> {
        let t = if self.watchers(p).next().is_some() {
            self.watchers(p).filter_map(|c| self.camera_clock(c)).max()
        } else {
            self.live_clock()
                .or_else(|| self.clocks.values().copied().max())
        };
        t.into_iter().chain(self.watermark).max()
    }

    /// The event time an incident lives by: its cameras' clocks, or for a satellite-only
    /// incident the clock at its place.
    pub(super) fn slot_clock(&self, slot: &Slot) -> Option<UtcTime> {
        if !slot.inc.cameras.is_empty() {
            return self.clock_of(&slot.inc.cameras);
        }
        let place = slot.inc.location.as_ref().map(|l| l.point).or_else(|| {
            slot.hotspot_ids
                .iter()
                .find_map(|id| self.hotspots.get(*id))
                .map(|e| e.hotspot.location)
        });
        match place {
            Some(p) => self.clock_at(&p),
            None => self.watermark(),
        }
    }

    /// The oldest clock that late data may still be judged by: the shared watermark, or the
    /// slowest located camera's time base (hotspots only join located cameras' incidents).
    pub(super) fn prune_clock(&self) -> Option<UtcTime> {
        let located = self
            .clocks
            .keys()
            .filter(|c| self.cameras.contains_key(*c))
            .filter_map(|c| self.camera_clock(c))
            .min();
        let fallback = if located.is_none() {
            self.clocks.values().copied().max()
        } else {
            None
        };
        [located, fallback, self.watermark]
            .into_iter()
            .flatten()
            .max()
    }

    /// Whether a hotspot lies ahead of the replay: every camera watching its place (every
    /// located camera, for a place none watches) replays a past date, and none has reached
    /// the hotspot's acquisition time yet.
    pub(super) fn ahead_of_replay(&self, h: &Hotspot) -> bool {
        let replay = if self.watchers(&h.location).next().is_some() {
            self.replay_clock(self.watchers(&h.location))
        } else {
            self.replay_clock(self.cameras.keys().map(String::as_str))
        };
        // A shared watermark, when one is used, is every camera's clock.
        replay.is_some_and(|newest| newest.max(self.watermark).is_none_or(|t| t < h.acquired_at))
    }

    /// For cameras that all replay a past date: `Some` of their newest clock (`None` inside
    /// while none has reported). `None` when there are none or one of them is live.
    pub(super) fn replay_clock<'a>(
        &self,
        cams: impl Iterator<Item = &'a str>,
    ) -> Option<Option<UtcTime>> {
        let mut newest = None;
        let mut any = false;
        for c in cams {
            if !self.replayed.contains(c) {
                return None;
            }
            any = true;
            newest = newest.max(self.clocks.get(c).copied());
        }
        any.then_some(newest)
    }

    /// The cameras whose field of view holds `p`.
    pub(super) fn watchers<'a>(&'a self, p: &'a GeoPoint) -> impl Iterator<Item = &'a str> + 'a {
        self.fov
            .iter()
            .filter(move |c| c.contains(p, 0.0))
            .map(|c| c.camera.as_ref())
    }

    /// End of the camera evidence window, extended to the watermark while events go on.
    pub(super) fn cam_end(&self, slot: &Slot) -> Option<UtcTime> {
        let (_, l) = slot.cam?;
        Some(match (slot.ongoing.is_empty(), self.slot_clock(slot)) {
            (false, Some(w)) => l.max(w),
            _ => l,
        })
    }

    pub(super) fn active_end(&self, slot: &Slot) -> UtcTime {
        match (slot.ongoing.is_empty(), self.slot_clock(slot)) {
            (false, Some(w)) => slot.inc.last_seen.max(w),
            _ => slot.inc.last_seen,
        }
    }
}
