//! Exports: CAP 1.2 XML (OASIS Common Alerting Protocol); GeoJSON (RFC 7946) through
//! [`lookout_core::geojson`].

use lookout_core::{Incident, IncidentConfidence, IncidentKind, IncidentState, Severity};

use crate::lifecycle::{severity_name, state_name};

/// CAP time format: `YYYY-MM-DDThh:mm:ss-00:00` (CAP forbids `Z`; UTC is written `-00:00`).
pub fn cap_time(t: lookout_core::UtcTime) -> String {
    format!("{}-00:00", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// CAP `<identifier>` of one revision: no spaces, commas or restricted characters.
pub fn cap_identifier(inc: &Incident) -> String {
    cap_identifier_of(&inc.id, inc.revision)
}

/// CAP `<identifier>` of revision `revision` of incident `id`.
pub fn cap_identifier_of(id: &str, revision: u64) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("lookout-{id}-{revision}")
}

/// What a CAP sink puts in every message's header (`[[alerts.sinks]] kind = "cap"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapOptions {
    /// `<sender>`.
    pub sender: String,
    /// `<status>`: `Actual`, `Exercise`, `System`, `Test` or `Draft`.
    pub status: String,
    /// `<scope>`: `Public`, `Restricted` or `Private`.
    pub scope: String,
    /// `<restriction>` (with scope `Restricted`).
    pub restriction: Option<String>,
    /// `<addresses>` (with scope `Private` or `Restricted`).
    pub addresses: Option<String>,
}

impl CapOptions {
    /// `Actual`, `Public`, from `sender`.
    pub fn public(sender: &str) -> CapOptions {
        CapOptions {
            sender: sender.to_string(),
            status: "Actual".into(),
            scope: "Public".into(),
            restriction: None,
            addresses: None,
        }
    }
}

/// One earlier message of the same incident, for `<references>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReference {
    /// Its `<identifier>`.
    pub identifier: String,
    /// Its `<sent>`.
    pub sent: lookout_core::UtcTime,
}

/// CAP `<severity>` for a Lookout severity.
pub fn cap_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Extreme",
        Severity::High => "Severe",
        Severity::Medium => "Moderate",
        Severity::Low => "Minor",
    }
}

/// CAP `<certainty>` from the operator's verdict or the corroboration level.
pub fn cap_certainty(inc: &Incident) -> &'static str {
    match inc.state {
        IncidentState::Confirmed => "Observed",
        IncidentState::FalseAlarm => "Unlikely",
        _ => match inc.confidence {
            IncidentConfidence::MultiCamera | IncidentConfidence::CameraSatellite => "Likely",
            IncidentConfidence::Camera | IncidentConfidence::SatelliteOnly => "Possible",
        },
    }
}

/// CAP `<urgency>`.
pub fn cap_urgency(inc: &Incident) -> &'static str {
    match (inc.state, inc.kind) {
        (IncidentState::Closed | IncidentState::FalseAlarm, _) => "Past",
        (_, IncidentKind::Fire | IncidentKind::Restricted) => "Immediate",
        _ => "Expected",
    }
}

/// CAP `<category>`.
pub fn cap_category(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::Fire => "Fire",
        IncidentKind::CameraHealth => "Infra",
        _ => "Safety",
    }
}

/// CAP `<msgType>`: the first message of an incident alerts, a false alarm cancels, the
/// rest update. `earlier`: whether messages of this incident were sent before.
pub fn cap_msg_type(inc: &Incident, earlier: bool) -> &'static str {
    match inc.state {
        IncidentState::FalseAlarm if earlier => "Cancel",
        _ if !earlier => "Alert",
        _ => "Update",
    }
}

fn event_name(inc: &Incident) -> String {
    match inc.kind {
        IncidentKind::Fire => {
            // The evidence summary counts every event; revisions stored before it existed
            // carry all their events.
            let seen = |k: lookout_core::EventKind| {
                inc.evidence.kinds.get(&k).is_some_and(|n| *n > 0)
                    || inc.events.iter().any(|e| e.kind == k)
            };
            let smoke = seen(lookout_core::EventKind::Smoke);
            let flames = seen(lookout_core::EventKind::Fire);
            match (smoke, flames, !smoke && !flames) {
                (_, _, true) => "Fire (satellite hotspot)".into(),
                (true, false, _) => "Fire (smoke seen)".into(),
                _ => "Fire (flames seen)".into(),
            }
        }
        IncidentKind::PostVacant => "Duty post vacant".into(),
        IncidentKind::OverOccupancy => "Too many people in a zone".into(),
        IncidentKind::Restricted => "Person in a restricted area".into(),
        IncidentKind::PatrolMissed => "Patrol checkpoint missed".into(),
        IncidentKind::ForbiddenRole => {
            "Unescorted person of a forbidden role in a restricted area".into()
        }
        IncidentKind::LoneWorker => "Lone worker in a two-person zone".into(),
        IncidentKind::PersonInZone => "Person in a watched zone".into(),
        IncidentKind::CameraHealth => "Camera fault".into(),
    }
}

pub use lookout_core::geo::{ellipse_ring, sector_ring};

/// A ring as a CAP `<polygon>`: `lat,lon` pairs separated by spaces, first = last.
fn cap_polygon(ring: &[[f64; 2]]) -> String {
    let pts: Vec<String> = ring
        .iter()
        .map(|p| format!("{:.6},{:.6}", p[1], p[0]))
        .collect();
    format!("      <polygon>{}</polygon>\n", pts.join(" "))
}

/// One CAP 1.2 `<alert>` document for an incident revision, with the sink's defaults
/// (`Actual`, `Public`) and no earlier messages.
pub fn cap_xml(inc: &Incident, sender: &str, sent: lookout_core::UtcTime) -> String {
    cap_message(inc, &CapOptions::public(sender), sent, &[])
}

/// One CAP 1.2 `<alert>` document for an incident revision: `sent` is the revision's
/// time, `earlier` every message sent before about the same incident (listed in
/// `<references>`; none makes it an `Alert`).
pub fn cap_message(
    inc: &Incident,
    o: &CapOptions,
    sent: lookout_core::UtcTime,
    earlier: &[CapReference],
) -> String {
    let sender = o.sender.as_str();
    let mut x = String::with_capacity(2048);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    x.push_str(&format!(
        "  <identifier>{}</identifier>\n",
        xml_escape(&cap_identifier(inc))
    ));
    x.push_str(&format!("  <sender>{}</sender>\n", xml_escape(sender)));
    x.push_str(&format!("  <sent>{}</sent>\n", cap_time(sent)));
    x.push_str(&format!("  <status>{}</status>\n", xml_escape(&o.status)));
    x.push_str(&format!(
        "  <msgType>{}</msgType>\n",
        cap_msg_type(inc, !earlier.is_empty())
    ));
    x.push_str(&format!("  <scope>{}</scope>\n", xml_escape(&o.scope)));
    if o.scope != "Public" {
        if let Some(r) = o.restriction.as_deref().filter(|_| o.scope == "Restricted") {
            x.push_str(&format!("  <restriction>{}</restriction>\n", xml_escape(r)));
        }
        if let Some(a) = &o.addresses {
            x.push_str(&format!("  <addresses>{}</addresses>\n", xml_escape(a)));
        }
    }
    x.push_str(&format!(
        "  <note>Lookout incident {} revision {}, state {}.</note>\n",
        xml_escape(&inc.id),
        inc.revision,
        state_name(inc.state)
    ));
    let base = cap_identifier(inc);
    let base = base.rsplit_once('-').map(|(b, _)| b).unwrap_or(&base);
    if !earlier.is_empty() {
        let refs: Vec<String> = earlier
            .iter()
            .map(|r| format!("{sender},{},{}", r.identifier, cap_time(r.sent)))
            .collect();
        x.push_str(&format!(
            "  <references>{}</references>\n",
            xml_escape(&refs.join(" "))
        ));
    }
    x.push_str(&format!("  <incidents>{}</incidents>\n", xml_escape(base)));
    x.push_str("  <info>\n    <language>en-US</language>\n");
    x.push_str(&format!(
        "    <category>{}</category>\n",
        cap_category(inc.kind)
    ));
    x.push_str(&format!(
        "    <event>{}</event>\n",
        xml_escape(&event_name(inc))
    ));
    x.push_str(&format!("    <urgency>{}</urgency>\n", cap_urgency(inc)));
    x.push_str(&format!(
        "    <severity>{}</severity>\n",
        cap_severity(inc.severity)
    ));
    x.push_str(&format!(
        "    <certainty>{}</certainty>\n",
        cap_certainty(inc)
    ));
    x.push_str(&format!(
        "    <onset>{}</onset>\n",
        cap_time(inc.first_seen)
    ));
    x.push_str("    <senderName>Lookout</senderName>\n");
    let cams: Vec<&str> = inc.cameras.iter().map(|c| c.as_ref()).collect();
    x.push_str(&format!(
        "    <headline>{} ({})</headline>\n",
        xml_escape(&event_name(inc)),
        xml_escape(&if cams.is_empty() {
            "satellite".to_string()
        } else {
            cams.join(", ")
        })
    ));
    if !inc.notes.is_empty() {
        x.push_str(&format!(
            "    <description>{}</description>\n",
            xml_escape(&inc.notes.join("\n"))
        ));
    }
    for (k, v) in [
        (
            "lookout:confidence",
            serde_json::to_value(inc.confidence)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        ),
        ("lookout:severity", severity_name(inc.severity).to_string()),
        ("lookout:state", state_name(inc.state).to_string()),
        ("lookout:revision", inc.revision.to_string()),
    ] {
        x.push_str(&format!(
            "    <parameter><valueName>{}</valueName><value>{}</value></parameter>\n",
            k,
            xml_escape(&v)
        ));
    }
    x.push_str("    <area>\n");
    let desc = match (&inc.location, cams.is_empty()) {
        (Some(l), _) => format!(
            "Estimated location ({}) near {:.5}, {:.5}",
            serde_json::to_value(l.method)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            l.point.lat,
            l.point.lon
        ),
        (None, false) => format!("Seen from camera(s) {}", cams.join(", ")),
        (None, true) => "Unknown".to_string(),
    };
    x.push_str(&format!(
        "      <areaDesc>{}</areaDesc>\n",
        xml_escape(&desc)
    ));
    // CAP wants every <polygon> before any <circle>.
    if let Some(l) = &inc.location {
        if let Some(e) = &l.ellipse {
            x.push_str(&cap_polygon(&ellipse_ring(
                &l.point,
                e.semi_major_m,
                e.semi_minor_m,
                e.orientation_deg,
            )));
        }
        let radius_km = l
            .ellipse
            .map(|e| e.semi_major_m / 1000.0)
            .unwrap_or(1.0)
            .max(0.05);
        x.push_str(&format!(
            "      <circle>{:.6},{:.6} {:.3}</circle>\n",
            l.point.lat, l.point.lon, radius_km
        ));
    } else {
        for s in &inc.sectors {
            x.push_str(&cap_polygon(&sector_ring(s)));
        }
        for h in &inc.hotspots {
            x.push_str(&format!(
                "      <circle>{:.6},{:.6} {:.3}</circle>\n",
                h.location.lat,
                h.location.lon,
                h.footprint_radius_m() / 1000.0
            ));
        }
    }
    x.push_str("    </area>\n  </info>\n</alert>\n");
    x
}

/// The GeoJSON Feature of an incident, as the `geojson` sink writes it (the one writer is
/// [`lookout_core::geojson`]).
pub fn incident_feature(inc: &Incident) -> lookout_core::geojson::Feature<'_> {
    lookout_core::geojson::incident_feature(inc)
}
