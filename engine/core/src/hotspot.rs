//! Satellite fire hotspots (NASA FIRMS).

use serde::{Deserialize, Serialize};

use crate::{GeoPoint, UtcTime};

/// Which satellite/instrument produced a hotspot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HotspotSource {
    /// MODIS on Terra.
    ModisTerra,
    /// MODIS on Aqua.
    ModisAqua,
    /// VIIRS on Suomi NPP.
    ViirsSnpp,
    /// VIIRS on NOAA-20.
    ViirsNoaa20,
    /// VIIRS on NOAA-21.
    ViirsNoaa21,
    /// Anything else FIRMS may add.
    Other,
}

/// FIRMS confidence: VIIRS uses classes, MODIS a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum HotspotConfidence {
    /// VIIRS low.
    Low,
    /// VIIRS nominal.
    Nominal,
    /// VIIRS high.
    High,
    /// MODIS 0..100.
    Percent(u8),
}

/// One satellite fire pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hotspot {
    /// Instrument and platform.
    pub source: HotspotSource,
    /// Pixel centre (not the fire itself).
    pub location: GeoPoint,
    /// Pixel size along scan, km.
    pub scan_km: f64,
    /// Pixel size along track, km.
    pub track_km: f64,
    /// Acquisition time (UTC).
    pub acquired_at: UtcTime,
    /// Detection confidence.
    pub confidence: HotspotConfidence,
    /// Fire radiative power, MW.
    pub frp: Option<f64>,
    /// Brightness temperature (I-4 for VIIRS, channel 21/22 for MODIS), kelvin.
    pub brightness_k: Option<f64>,
    /// `D` or `N`.
    pub daynight: Option<char>,
    /// FIRMS archive `type`: 0 vegetation fire, 1 active volcano, 2 other static land
    /// source, 3 offshore. `None` in NRT files.
    pub fire_type: Option<u8>,
}

impl Hotspot {
    /// A key that recognises the same hotspot across polls and files.
    pub fn dedup_key(&self) -> (i64, i64, i64, HotspotSource) {
        (
            (self.location.lat * 1e4).round() as i64,
            (self.location.lon * 1e4).round() as i64,
            self.acquired_at.timestamp() / 60,
            self.source,
        )
    }

    /// Radius in metres of the pixel footprint (half its diagonal).
    pub fn footprint_radius_m(&self) -> f64 {
        0.5 * 1000.0 * (self.scan_km.powi(2) + self.track_km.powi(2)).sqrt()
    }
}
