//! NASA FIRMS active-fire CSV, in every header variant met in practice:
//!
//! * VIIRS 375 m NRT: `latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,
//!   confidence,version,bright_ti5,frp,daynight` (confidence `low`/`nominal`/`high`; the
//!   area API may add `instrument`);
//! * MODIS 1 km NRT: `...,brightness,...,confidence,version,bright_t31,frp,daynight`
//!   (satellite `T`/`A`, confidence 0–100);
//! * archive downloads: `...,satellite,instrument,confidence,version,bright_t31,frp,
//!   daynight,type` (confidence `l`/`n`/`h` for VIIRS, `type` 0–3).
//!
//! Columns are found by name, so order does not matter and unknown columns are ignored. A bad
//! row (wrong column count, bad number, position out of range, bad date) is skipped,
//! counted and logged with its line number; a text without the required columns is an
//! error. The parser never panics, whatever the bytes.

use std::path::Path;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use lookout_core::{GeoPoint, Hotspot, HotspotConfidence, HotspotSource, UtcTime};
use serde::Serialize;
use tracing::warn;

use crate::FusionError;

/// Which FIRMS header variant a text uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirmsFormat {
    /// VIIRS NRT (`bright_ti4`).
    ViirsNrt,
    /// MODIS NRT (`brightness`, no `type`).
    ModisNrt,
    /// Archive download (`type` column).
    Archive,
    /// Required columns present, but none of the known variants.
    Generic,
}

impl FirmsFormat {
    /// The name printed by `lookout hotspots parse`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FirmsFormat::ViirsNrt => "viirs-nrt",
            FirmsFormat::ModisNrt => "modis-nrt",
            FirmsFormat::Archive => "archive",
            FirmsFormat::Generic => "generic",
        }
    }
}

/// What one parse produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseReport {
    /// Header variant.
    pub format: FirmsFormat,
    /// The valid rows, in file order.
    pub hotspots: Vec<Hotspot>,
    /// Skipped rows: (1-based line number, reason).
    pub skipped: Vec<(usize, String)>,
}

/// The summary `lookout hotspots parse FILE --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParseSummary {
    /// Header variant (`viirs-nrt`, `modis-nrt`, `archive`, `generic`).
    pub format: String,
    /// Number of valid hotspots.
    pub rows: usize,
    /// Number of skipped rows.
    pub skipped: usize,
    /// Earliest acquisition time, RFC 3339 UTC; `None` without rows.
    pub first: Option<String>,
    /// Latest acquisition time, RFC 3339 UTC; `None` without rows.
    pub last: Option<String>,
}

/// Reads and parses a FIRMS CSV file.
pub fn parse_file(path: &Path) -> Result<ParseReport, FusionError> {
    let bytes = std::fs::read(path).map_err(|source| FusionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_bytes(&bytes, &path.display().to_string())
}

/// Parses FIRMS CSV bytes (invalid UTF-8 only spoils the rows it is in).
pub fn parse_bytes(bytes: &[u8], origin: &str) -> Result<ParseReport, FusionError> {
    parse_str(&String::from_utf8_lossy(bytes), origin)
}

/// Summarises a file for the CLI.
pub fn parse_summary(path: &Path) -> Result<ParseSummary, FusionError> {
    let r = parse_file(path)?;
    Ok(summarize(&r))
}

/// Summarises a parse.
pub fn summarize(r: &ParseReport) -> ParseSummary {
    let fmt = |t: UtcTime| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    ParseSummary {
        format: r.format.as_str().to_string(),
        rows: r.hotspots.len(),
        skipped: r.skipped.len(),
        first: r.hotspots.iter().map(|h| h.acquired_at).min().map(fmt),
        last: r.hotspots.iter().map(|h| h.acquired_at).max().map(fmt),
    }
}

/// Column positions found in a header.
#[derive(Debug, Clone)]
struct Columns {
    n: usize,
    lat: usize,
    lon: usize,
    scan: usize,
    track: usize,
    date: usize,
    time: usize,
    confidence: usize,
    satellite: Option<usize>,
    instrument: Option<usize>,
    brightness: Option<usize>,
    frp: Option<usize>,
    daynight: Option<usize>,
    fire_type: Option<usize>,
    format: FirmsFormat,
    header_line: String,
}

fn split(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"').trim())
        .collect()
}

impl Columns {
    fn from_header(line: &str, origin: &str) -> Result<Columns, FusionError> {
        let names: Vec<String> = split(line).iter().map(|s| s.to_ascii_lowercase()).collect();
        let find = |n: &str| names.iter().position(|c| c == n);
        let mut missing = Vec::new();
        let mut req = |n: &'static str| {
            let p = find(n);
            if p.is_none() {
                missing.push(n);
            }
            p.unwrap_or(0)
        };
        let lat = req("latitude");
        let lon = req("longitude");
        let scan = req("scan");
        let track = req("track");
        let date = req("acq_date");
        let time = req("acq_time");
        let confidence = req("confidence");
        if !missing.is_empty() {
            let shown: String = line.chars().take(120).collect();
            return Err(FusionError::Header {
                origin: origin.to_string(),
                message: format!(
                    "line 1 lacks the column(s) {} (header: {shown:?})",
                    missing.join(", ")
                ),
            });
        }
        let fire_type = find("type");
        let format = if fire_type.is_some() {
            FirmsFormat::Archive
        } else if find("bright_ti4").is_some() {
            FirmsFormat::ViirsNrt
        } else if find("brightness").is_some() {
            FirmsFormat::ModisNrt
        } else {
            FirmsFormat::Generic
        };
        Ok(Columns {
            n: names.len(),
            lat,
            lon,
            scan,
            track,
            date,
            time,
            confidence,
            satellite: find("satellite"),
            instrument: find("instrument"),
            brightness: find("bright_ti4").or_else(|| find("brightness")),
            frp: find("frp"),
            daynight: find("daynight"),
            fire_type,
            format,
            header_line: names.join(","),
        })
    }

    fn row(&self, fields: &[&str]) -> Result<Hotspot, String> {
        if fields.len() != self.n {
            return Err(format!(
                "expected {} columns, found {}",
                self.n,
                fields.len()
            ));
        }
        let num = |i: usize, name: &str| -> Result<f64, String> {
            let s = fields[i];
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("{name} {s:?} is not a number")),
            }
        };
        let opt_num = |i: Option<usize>, name: &str| -> Result<Option<f64>, String> {
            match i {
                Some(i) if !fields[i].is_empty() => num(i, name).map(Some),
                _ => Ok(None),
            }
        };
        let lat = num(self.lat, "latitude")?;
        let lon = num(self.lon, "longitude")?;
        if !(-90.0..=90.0).contains(&lat) {
            return Err(format!("latitude {lat} is out of range -90..90"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(format!("longitude {lon} is out of range -180..180"));
        }
        let scan = num(self.scan, "scan")?;
        let track = num(self.track, "track")?;
        if !(scan > 0.0 && scan <= 50.0 && track > 0.0 && track <= 50.0) {
            return Err(format!("pixel size {scan} × {track} km is not plausible"));
        }
        let acquired_at = acq_time(fields[self.date], fields[self.time])?;
        let confidence = confidence(fields[self.confidence])?;
        let sat = self.satellite.map(|i| fields[i]).unwrap_or("");
        let instrument = self.instrument.map(|i| fields[i]).unwrap_or("");
        let source = source(self.format, instrument, sat, confidence);
        let brightness_k = opt_num(self.brightness, "brightness")?;
        let frp = opt_num(self.frp, "frp")?;
        let daynight = match self.daynight.map(|i| fields[i]) {
            None | Some("") => None,
            Some("D") | Some("d") => Some('D'),
            Some("N") | Some("n") => Some('N'),
            Some(other) => return Err(format!("daynight {other:?} is not D or N")),
        };
        let fire_type = match self.fire_type.map(|i| fields[i]) {
            None | Some("") => None,
            Some(s) => match s.parse::<u8>() {
                Ok(t) if t <= 3 => Some(t),
                _ => return Err(format!("type {s:?} is not 0, 1, 2 or 3")),
            },
        };
        Ok(Hotspot {
            source,
            location: GeoPoint::new(lat, lon),
            scan_km: scan,
            track_km: track,
            acquired_at,
            confidence,
            frp,
            brightness_k,
            daynight,
            fire_type,
        })
    }
}

fn acq_time(date: &str, time: &str) -> Result<UtcTime, String> {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| format!("acq_date {date:?} is not YYYY-MM-DD"))?;
    let hhmm: String = time.chars().filter(|c| *c != ':').collect();
    let bad = || format!("acq_time {time:?} is not HHMM");
    if hhmm.is_empty() || hhmm.len() > 4 || !hhmm.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u32 = hhmm.parse().map_err(|_| bad())?;
    let t = NaiveTime::from_hms_opt(v / 100, v % 100, 0).ok_or_else(bad)?;
    Ok(Utc.from_utc_datetime(&d.and_time(t)))
}

fn confidence(s: &str) -> Result<HotspotConfidence, String> {
    match s.to_ascii_lowercase().as_str() {
        "l" | "low" => Ok(HotspotConfidence::Low),
        "n" | "nominal" => Ok(HotspotConfidence::Nominal),
        "h" | "high" => Ok(HotspotConfidence::High),
        other => match other.parse::<u8>() {
            Ok(p) if p <= 100 => Ok(HotspotConfidence::Percent(p)),
            _ => Err(format!(
                "confidence {s:?} is neither low/nominal/high nor 0..100"
            )),
        },
    }
}

fn source(
    format: FirmsFormat,
    instrument: &str,
    sat: &str,
    conf: HotspotConfidence,
) -> HotspotSource {
    let sat_l = sat.to_ascii_lowercase();
    let modis = match instrument.to_ascii_lowercase().as_str() {
        "modis" => true,
        "viirs" => false,
        _ => match format {
            FirmsFormat::ModisNrt => true,
            FirmsFormat::ViirsNrt => false,
            _ => match sat_l.as_str() {
                "t" | "a" | "terra" | "aqua" => true,
                _ => matches!(conf, HotspotConfidence::Percent(_)),
            },
        },
    };
    if modis {
        match sat_l.as_str() {
            "t" | "terra" => HotspotSource::ModisTerra,
            "a" | "aqua" => HotspotSource::ModisAqua,
            _ => HotspotSource::Other,
        }
    } else {
        match sat_l.as_str() {
            "n" | "npp" | "snpp" | "suomi npp" | "suomi-npp" => HotspotSource::ViirsSnpp,
            "1" | "n20" | "noaa-20" | "noaa20" | "j1" => HotspotSource::ViirsNoaa20,
            "2" | "n21" | "noaa-21" | "noaa21" | "j2" => HotspotSource::ViirsNoaa21,
            _ => HotspotSource::Other,
        }
    }
}

/// How many bad rows per text are logged one by one (the rest are summarised).
const LOGGED_ROWS: usize = 10;

/// Parses FIRMS CSV text; `origin` names it in errors and logs.
pub fn parse_str(text: &str, origin: &str) -> Result<ParseReport, FusionError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => break l,
            None => {
                return Err(FusionError::Header {
                    origin: origin.to_string(),
                    message: "the text is empty".into(),
                })
            }
        }
    };
    let cols = Columns::from_header(header, origin)?;
    let mut hotspots = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(line);
        let result = if fields.join(",").to_ascii_lowercase() == cols.header_line {
            Err("repeated header".to_string())
        } else {
            cols.row(&fields)
        };
        match result {
            Ok(h) => hotspots.push(h),
            Err(reason) => {
                if skipped.len() < LOGGED_ROWS {
                    warn!(origin, line = line_no, %reason, "Skipped a bad FIRMS row.");
                }
                skipped.push((line_no, reason));
            }
        }
    }
    if skipped.len() > LOGGED_ROWS {
        warn!(
            origin,
            skipped = skipped.len(),
            "Skipped more bad FIRMS rows than were logged."
        );
    }
    Ok(ParseReport {
        format: cols.format,
        hotspots,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_variant_in_one_row() {
        let viirs = "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,confidence,version,bright_ti5,frp,daynight\n\
                     48.18656,-64.9242,301.04,0.42,0.61,2025-10-29,0729,N,nominal,2.0NRT,277.49,1.27,N\n";
        let r = parse_str(viirs, "v").unwrap();
        assert_eq!(r.format, FirmsFormat::ViirsNrt);
        let h = &r.hotspots[0];
        assert_eq!(h.source, HotspotSource::ViirsSnpp);
        assert_eq!(h.confidence, HotspotConfidence::Nominal);
        assert_eq!(h.acquired_at.to_rfc3339(), "2025-10-29T07:29:00+00:00");
        assert_eq!(h.brightness_k, Some(301.04));
        assert_eq!(h.daynight, Some('N'));

        let modis = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n\
                     -41.1,147.7,303.04,1.12,1.05,2023-03-10,5,A,55,6.1NRT,290.77,5.87,D\n";
        let r = parse_str(modis, "m").unwrap();
        assert_eq!(r.format, FirmsFormat::ModisNrt);
        assert_eq!(r.hotspots[0].source, HotspotSource::ModisAqua);
        assert_eq!(r.hotspots[0].confidence, HotspotConfidence::Percent(55));
        assert_eq!(
            r.hotspots[0].acquired_at.to_rfc3339(),
            "2023-03-10T00:05:00+00:00"
        );

        let archive = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type\r\n\
                       36.2,27.9,354.65,0.57,0.52,2023-07-18,2323,N,VIIRS,h,2,304.36,24.71,N,3\r\n";
        let r = parse_str(archive, "a").unwrap();
        assert_eq!(r.format, FirmsFormat::Archive);
        assert_eq!(r.hotspots[0].fire_type, Some(3));
        assert_eq!(r.hotspots[0].confidence, HotspotConfidence::High);
        assert_eq!(r.hotspots[0].source, HotspotSource::ViirsSnpp);
    }

    #[test]
    fn header_errors_name_the_missing_columns() {
        let e = parse_str("lat,lon,when\n1,2,3\n", "x.csv").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("x.csv") && msg.contains("latitude"), "{msg}");
        assert!(parse_str("", "empty").is_err());
        assert!(parse_str("Invalid MAP_KEY.", "api").is_err());
    }
}
