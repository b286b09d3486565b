//! The operator-driven incident lifecycle.
//!
//! ```text
//! new ──▶ acknowledged ──▶ confirmed ──▶ closed
//!  │            │      └──▶ false_alarm ──▶ closed
//!  └────────────┴──▶ (confirmed | false_alarm | closed directly)
//! closed | false_alarm ──reopen──▶ acknowledged
//! ```
//!
//! Every transition is stored with who made it, when and why; a transition the table does
//! not allow is an error that names the allowed targets.

use lookout_core::{IncidentState, Severity};

/// The lowercase name of a state as used in the API and the database.
pub fn state_name(s: IncidentState) -> &'static str {
    match s {
        IncidentState::New => "new",
        IncidentState::Acknowledged => "acknowledged",
        IncidentState::Confirmed => "confirmed",
        IncidentState::FalseAlarm => "false_alarm",
        IncidentState::Closed => "closed",
    }
}

/// Parses a state name (`new`, `acknowledged`, `confirmed`, `false_alarm`, `closed`).
pub fn parse_state(s: &str) -> Option<IncidentState> {
    Some(match s {
        "new" => IncidentState::New,
        "acknowledged" => IncidentState::Acknowledged,
        "confirmed" => IncidentState::Confirmed,
        "false_alarm" => IncidentState::FalseAlarm,
        "closed" => IncidentState::Closed,
        _ => return None,
    })
}

/// The lowercase name of a severity.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// Parses a severity name.
pub fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

/// The states an incident in `from` may move to.
pub fn allowed_targets(from: IncidentState) -> &'static [IncidentState] {
    use IncidentState::*;
    match from {
        New => &[Acknowledged, Confirmed, FalseAlarm, Closed],
        Acknowledged => &[Confirmed, FalseAlarm, Closed],
        Confirmed => &[FalseAlarm, Closed],
        FalseAlarm => &[Confirmed, Closed, Acknowledged],
        Closed => &[Acknowledged],
    }
}

/// Checks one transition; `Err` says what is allowed instead.
pub fn check_transition(from: IncidentState, to: IncidentState) -> Result<(), String> {
    if allowed_targets(from).contains(&to) {
        Ok(())
    } else {
        let allowed: Vec<&str> = allowed_targets(from)
            .iter()
            .map(|s| state_name(*s))
            .collect();
        Err(format!(
            "cannot go from {} to {}; allowed from {}: {}",
            state_name(from),
            state_name(to),
            state_name(from),
            allowed.join(", ")
        ))
    }
}

/// True for states in which the incident still needs attention (updates are notified and
/// new detections merge into it).
pub fn is_open(s: IncidentState) -> bool {
    matches!(
        s,
        IncidentState::New | IncidentState::Acknowledged | IncidentState::Confirmed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use IncidentState::*;

    #[test]
    fn table() {
        assert!(check_transition(New, Acknowledged).is_ok());
        assert!(check_transition(Acknowledged, Confirmed).is_ok());
        assert!(check_transition(Confirmed, Closed).is_ok());
        assert!(check_transition(Closed, Acknowledged).is_ok());
        let e = check_transition(Closed, Confirmed).unwrap_err();
        assert!(e.contains("allowed from closed: acknowledged"), "{e}");
        assert!(check_transition(Acknowledged, New).is_err());
        assert!(check_transition(New, New).is_err());
        for s in [New, Acknowledged, Confirmed, FalseAlarm, Closed] {
            assert_eq!(parse_state(state_name(s)), Some(s));
        }
    }
}
