//! An in-memory spatial index of hotspots: a grid of lat/lon buckets, with the dedup set.

use std::collections::HashMap;

use lookout_core::geo::angle_diff_deg;
use lookout_core::{GeoPoint, Hotspot, HotspotSource, Sector, UtcTime};

/// Metres per degree of latitude on the mean sphere.
const M_PER_DEG: f64 = 111_195.0;

/// The dedup key of a hotspot ([`Hotspot::dedup_key`]).
pub type DedupKey = (i64, i64, i64, HotspotSource);

/// Index of a hotspot in a [`HotspotIndex`].
pub type HotspotId = u32;

/// One stored hotspot.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The hotspot.
    pub hotspot: Hotspot,
    /// False for static sources (FIRMS type 2/3, configured masks): never used.
    pub eligible: bool,
    /// The incident (by creation sequence) it belongs to.
    pub incident: Option<u64>,
}

/// Hotspots bucketed on a lat/lon grid (cells of `cell_deg`), with dedup by key.
/// The antimeridian is not stitched: a query crossing ±180° sees one side only.
#[derive(Debug)]
pub struct HotspotIndex {
    entries: Vec<Option<Entry>>,
    free: Vec<HotspotId>,
    grid: HashMap<(i32, i32), Vec<HotspotId>>,
    keys: HashMap<DedupKey, HotspotId>,
    cell_deg: f64,
    live: usize,
}

impl Default for HotspotIndex {
    fn default() -> Self {
        HotspotIndex::new(0.05)
    }
}

impl HotspotIndex {
    /// An empty index with cells of `cell_deg` degrees.
    pub fn new(cell_deg: f64) -> HotspotIndex {
        HotspotIndex {
            entries: Vec::new(),
            free: Vec::new(),
            grid: HashMap::new(),
            keys: HashMap::new(),
            cell_deg: cell_deg.max(1e-4),
            live: 0,
        }
    }

    fn cell(&self, p: &GeoPoint) -> (i32, i32) {
        (
            (p.lat / self.cell_deg).floor() as i32,
            (p.lon / self.cell_deg).floor() as i32,
        )
    }

    /// Number of stored hotspots.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// True when a hotspot with this key is stored.
    pub fn contains_key(&self, k: &DedupKey) -> bool {
        self.keys.contains_key(k)
    }

    /// Stores a hotspot; `None` when one with the same dedup key is already stored.
    pub fn insert(&mut self, h: Hotspot, eligible: bool) -> Option<HotspotId> {
        let key = h.dedup_key();
        if self.keys.contains_key(&key) {
            return None;
        }
        let cell = self.cell(&h.location);
        let e = Entry {
            hotspot: h,
            eligible,
            incident: None,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(e);
                id
            }
            None => {
                self.entries.push(Some(e));
                (self.entries.len() - 1) as HotspotId
            }
        };
        self.grid.entry(cell).or_default().push(id);
        self.keys.insert(key, id);
        self.live += 1;
        Some(id)
    }

    /// A stored hotspot.
    pub fn get(&self, id: HotspotId) -> Option<&Entry> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    /// A stored hotspot, mutably.
    pub fn get_mut(&mut self, id: HotspotId) -> Option<&mut Entry> {
        self.entries.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Ids of hotspots in the lat/lon box around `center` with half-sizes in metres.
    fn query_box(&self, center: &GeoPoint, half_m: f64, out: &mut Vec<HotspotId>) {
        let dlat = half_m / M_PER_DEG;
        let coslat = center.lat.to_radians().cos().abs().max(0.01);
        let dlon = (half_m / (M_PER_DEG * coslat)).min(180.0);
        let lo = self.cell(&GeoPoint::new(center.lat - dlat, center.lon - dlon));
        let hi = self.cell(&GeoPoint::new(center.lat + dlat, center.lon + dlon));
        for la in lo.0..=hi.0 {
            for lo_ in lo.1..=hi.1 {
                if let Some(ids) = self.grid.get(&(la, lo_)) {
                    out.extend_from_slice(ids);
                }
            }
        }
    }

    /// Ids of hotspots whose pixel centre lies within `radius_m` of `center`.
    pub fn within(&self, center: &GeoPoint, radius_m: f64) -> Vec<HotspotId> {
        let mut ids = Vec::new();
        self.query_box(center, radius_m, &mut ids);
        ids.retain(|id| {
            self.get(*id)
                .is_some_and(|e| e.hotspot.location.distance_m(center) <= radius_m)
        });
        ids
    }

    /// Ids of hotspots acquired in `[from, to]` whose pixel footprint touches the cone.
    pub fn in_sector(&self, s: &Sector, from: UtcTime, to: UtcTime) -> Vec<HotspotId> {
        let mut ids = Vec::new();
        self.query_box(&s.origin, s.range_m + 2000.0, &mut ids);
        ids.retain(|id| {
            self.get(*id).is_some_and(|e| {
                let h = &e.hotspot;
                h.acquired_at >= from && h.acquired_at <= to && sector_touches(s, h)
            })
        });
        ids
    }

    /// The same query as [`Self::in_sector`] by scanning every hotspot (benchmark baseline).
    pub fn in_sector_linear(&self, s: &Sector, from: UtcTime, to: UtcTime) -> Vec<HotspotId> {
        (0..self.entries.len() as HotspotId)
            .filter(|id| {
                self.get(*id).is_some_and(|e| {
                    let h = &e.hotspot;
                    h.acquired_at >= from && h.acquired_at <= to && sector_touches(s, h)
                })
            })
            .collect()
    }

    /// Removes hotspots acquired before `before`; returns how many.
    pub fn prune(&mut self, before: UtcTime) -> usize {
        self.prune_except(before, |_| false)
    }

    /// Removes hotspots acquired before `before` unless `keep` says otherwise (the hotspots
    /// of a fire that still burns); returns how many. The ids of removed hotspots are
    /// reused by later ones.
    pub fn prune_except(&mut self, before: UtcTime, keep: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = 0;
        for id in 0..self.entries.len() {
            let old = self.entries[id]
                .as_ref()
                .is_some_and(|e| e.hotspot.acquired_at < before && !keep(e));
            if old {
                if let Some(e) = self.entries[id].take() {
                    self.keys.remove(&e.hotspot.dedup_key());
                    let cell = self.cell(&e.hotspot.location);
                    if let Some(v) = self.grid.get_mut(&cell) {
                        v.retain(|x| *x as usize != id);
                        if v.is_empty() {
                            self.grid.remove(&cell);
                        }
                    }
                    self.free.push(id as HotspotId);
                    self.live -= 1;
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// True when a hotspot's pixel footprint touches a cone: its centre within the range plus
/// the footprint radius, and within the half-width plus the angle the footprint subtends.
pub fn sector_touches(s: &Sector, h: &Hotspot) -> bool {
    let r = h.footprint_radius_m();
    let d = s.origin.distance_m(&h.location);
    if d > s.range_m + r {
        return false;
    }
    if d <= r.max(1.0) {
        return true;
    }
    let extra = (r / d).atan().to_degrees();
    angle_diff_deg(s.origin.bearing_to(&h.location), s.bearing_deg).abs()
        <= s.half_width_deg + extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lookout_core::HotspotConfidence;

    fn hs(lat: f64, lon: f64, min: u32) -> Hotspot {
        Hotspot {
            source: HotspotSource::ViirsSnpp,
            location: GeoPoint::new(lat, lon),
            scan_km: 0.4,
            track_km: 0.4,
            acquired_at: chrono::Utc
                .with_ymd_and_hms(2023, 7, 22, 11, min, 0)
                .unwrap(),
            confidence: HotspotConfidence::Nominal,
            frp: None,
            brightness_k: None,
            daynight: None,
            fire_type: None,
        }
    }

    #[test]
    fn grid_queries_match_linear_scan_and_dedup() {
        let mut idx = HotspotIndex::default();
        let mut n = 0;
        for i in 0..40 {
            for j in 0..40 {
                let h = hs(
                    36.0 + i as f64 * 0.01,
                    27.8 + j as f64 * 0.01,
                    (i + j) as u32 % 60,
                );
                assert!(idx.insert(h.clone(), true).is_some());
                assert!(idx.insert(h, true).is_none());
                n += 1;
            }
        }
        assert_eq!(idx.len(), n);
        let s = Sector {
            camera: "a".into(),
            origin: GeoPoint::new(36.2, 27.85),
            bearing_deg: 130.0,
            half_width_deg: 2.0,
            range_m: 20_000.0,
            at: chrono::Utc.with_ymd_and_hms(2023, 7, 22, 11, 0, 0).unwrap(),
        };
        let from = chrono::Utc
            .with_ymd_and_hms(2023, 7, 22, 11, 10, 0)
            .unwrap();
        let to = chrono::Utc
            .with_ymd_and_hms(2023, 7, 22, 11, 40, 0)
            .unwrap();
        let mut a = idx.in_sector(&s, from, to);
        let b = idx.in_sector_linear(&s, from, to);
        a.sort();
        assert_eq!(a, b);
        assert!(!a.is_empty());
        let near = idx.within(&GeoPoint::new(36.1, 27.9), 1500.0);
        assert!(!near.is_empty() && near.len() < 20, "{}", near.len());
        let removed = idx.prune(from);
        assert!(removed > 0);
        assert_eq!(idx.len(), n - removed);
        let b2 = idx.in_sector_linear(&s, from, to);
        assert_eq!(b2.len(), b.len());
    }
}
