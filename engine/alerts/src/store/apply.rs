//! Fusion revisions into stored incidents: stored under fusion's id (fusion alone decides
//! which events and hotspots are one incident), duplicate suppression, the notification
//! throttle, group commit.

use std::collections::HashMap;

use lookout_core::{Incident, IncidentState, UtcTime};
use rusqlite::{params, OptionalExtension, Transaction};

use super::incidents::{confidence_name, insert_revision, insert_snapshot, load_stored};
use super::outbox::Reason;
use super::{ms, NewSnapshot, Store, StoreError, StoredIncident};
use crate::lifecycle::{is_open, severity_name, state_name};

/// What [`Store::apply_incident`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Stored as a new incident.
    Created {
        /// Stored id.
        id: String,
        /// Revision (1).
        revision: u64,
    },
    /// Stored as a new revision of an existing incident.
    Updated {
        /// Stored id.
        id: String,
        /// New revision.
        revision: u64,
        /// Whether sinks were notified (not for false alarms and closed incidents).
        notified: bool,
    },
    /// Same fusion revision or same content as already stored: nothing written.
    Duplicate {
        /// Stored id it maps to.
        id: String,
    },
}

impl ApplyOutcome {
    /// The stored incident id.
    pub fn id(&self) -> &str {
        match self {
            ApplyOutcome::Created { id, .. }
            | ApplyOutcome::Updated { id, .. }
            | ApplyOutcome::Duplicate { id } => id,
        }
    }
}

/// A transaction's changes to [`Store`]'s notification throttle, per incident: the new
/// last notified (capture time ms, fingerprint), or `None` to forget the incident.
type NotifiedChanges = HashMap<String, Option<(i64, u64)>>;

impl Store {
    /// Notify an open incident's revisions whose material fingerprint did not change at
    /// most once per `s` seconds of capture time (0, the default of a new store: every
    /// revision). Revisions are stored either way. A burning hillside seen as many short
    /// tracks, each merged into the incident, is one incident with updates, not a storm.
    pub fn set_update_interval_s(&self, s: f64) {
        self.update_interval_ms.store(
            (s.max(0.0) * 1000.0) as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether this revision of a stored incident is worth a notification, and if so
    /// remembers it as the last notified one **in `pending`**: the throttle's state changes
    /// only when the transaction that queued the notification commits
    /// ([`Store::commit_notified`]). Earlier revisions of the same transaction (a group
    /// commit) are seen through `pending`.
    pub(super) fn worth_notifying(
        &self,
        pending: &mut NotifiedChanges,
        inc: &Incident,
        new: bool,
    ) -> bool {
        let interval = self
            .update_interval_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if !is_open(inc.state) {
            pending.insert(inc.id.clone(), None);
            return new;
        }
        let fp = inc.material_fingerprint();
        let at = ms(inc.last_seen);
        let prev = match pending.get(&inc.id) {
            Some(p) => *p,
            None => self
                .last_notified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&inc.id)
                .copied(),
        };
        let send = new
            || interval <= 0
            || match prev {
                None => true,
                Some((t, f)) => f != fp || at >= t + interval,
            };
        if send {
            pending.insert(inc.id.clone(), Some((at, fp)));
        }
        send
    }

    /// Applies a committed transaction's throttle changes. Called only after a successful
    /// commit, so a rolled-back notification is never taken for one that went out.
    pub(super) fn commit_notified(&self, pending: NotifiedChanges) {
        if pending.is_empty() {
            return;
        }
        let mut last = self.last_notified.lock().unwrap_or_else(|e| e.into_inner());
        for (id, v) in pending {
            match v {
                Some(x) => {
                    last.insert(id, x);
                }
                None => {
                    last.remove(&id);
                }
            }
        }
    }

    /// Stores a fusion revision of an incident under fusion's id (an alias row an older
    /// Lookout wrote when its cooldown merged this id into another incident still routes it
    /// there), suppresses duplicates, writes the revision, links the snapshot and queues
    /// notifications for every sink — all in one transaction.
    pub fn apply_incident(
        &self,
        inc: &Incident,
        snapshot: Option<&NewSnapshot>,
        now: UtcTime,
    ) -> Result<(ApplyOutcome, Option<StoredIncident>), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut pending = NotifiedChanges::new();
        let r = self.apply_in(&tx, inc, snapshot, now, &mut pending)?;
        tx.commit()?;
        self.commit_notified(pending);
        Ok(r)
    }

    /// Group commit: stores many fusion revisions, in order, in **one** transaction (each
    /// one exactly as [`Store::apply_incident`] would, later ones seeing earlier ones). Either
    /// every revision with its outbox rows is committed or none is; on an error nothing is
    /// written and the caller may retry the revisions one by one to isolate a bad one.
    pub fn apply_incidents(
        &self,
        items: &[(&Incident, Option<&NewSnapshot>)],
        now: UtcTime,
    ) -> Result<Vec<(ApplyOutcome, Option<StoredIncident>)>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(items.len());
        let mut pending = NotifiedChanges::new();
        for (inc, snap) in items {
            out.push(self.apply_in(&tx, inc, *snap, now, &mut pending)?);
        }
        tx.commit()?;
        self.commit_notified(pending);
        Ok(out)
    }

    /// The body of [`Store::apply_incident`] inside the caller's transaction (not committed);
    /// throttle changes go to `pending`, for the caller to apply once the commit succeeded.
    fn apply_in(
        &self,
        tx: &Transaction<'_>,
        inc: &Incident,
        snapshot: Option<&NewSnapshot>,
        now: UtcTime,
        pending: &mut NotifiedChanges,
    ) -> Result<(ApplyOutcome, Option<StoredIncident>), StoreError> {
        let alias: Option<(String, i64)> = tx
            .prepare_cached(
                "SELECT incident_id, source_revision FROM incident_aliases WHERE alias = ?1",
            )?
            .query_row([&inc.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let target = match &alias {
            Some((target, rev)) => {
                if inc.revision as i64 <= *rev {
                    return Ok((ApplyOutcome::Duplicate { id: target.clone() }, None));
                }
                target.clone()
            }
            None => inc.id.clone(),
        };
        tx.prepare_cached(
            "INSERT INTO incident_aliases(alias, incident_id, source_revision) VALUES (?1, ?2, ?3)
             ON CONFLICT(alias) DO UPDATE SET source_revision = excluded.source_revision",
        )?
        .execute(params![inc.id, target, inc.revision as i64])?;

        let existing = load_stored(tx, &target)?;
        let now_ms = ms(now);
        let (merged, outcome_new) = match &existing {
            None => {
                let mut m = inc.clone();
                m.id = target.clone();
                m.revision = 1;
                m.state = IncidentState::New;
                (m, true)
            }
            Some(old) => {
                let mut m = merge(&old.incident, inc);
                m.revision = old.incident.revision;
                if m == old.incident && snapshot.is_none() {
                    return Ok((ApplyOutcome::Duplicate { id: target }, None));
                }
                m.revision = old.incident.revision + 1;
                (m, false)
            }
        };
        let snapshot_id = match snapshot {
            Some(s) => Some(insert_snapshot(tx, &merged, s, now_ms)?),
            None => existing.as_ref().and_then(|e| e.snapshot_id),
        };
        let data = serde_json::to_string(&merged)?;
        if outcome_new {
            tx.prepare_cached(
                "INSERT INTO incidents(id, kind, state, severity, confidence, revision, first_seen,
                   last_seen, created_at, updated_at, escalations, escalate_at, snapshot_id, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 0, ?10, ?11, ?12)",
            )?
            .execute(params![
                merged.id,
                merged.kind.as_str(),
                state_name(merged.state),
                severity_name(merged.severity),
                confidence_name(&merged),
                merged.revision as i64,
                ms(merged.first_seen),
                ms(merged.last_seen),
                now_ms,
                now_ms + self.escalate_ms,
                snapshot_id,
                data
            ])?;
        } else {
            tx.prepare_cached(
                "UPDATE incidents SET severity = ?2, confidence = ?3, revision = ?4,
                   first_seen = ?5, last_seen = ?6, updated_at = ?7, snapshot_id = ?8, data = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                merged.id,
                severity_name(merged.severity),
                confidence_name(&merged),
                merged.revision as i64,
                ms(merged.first_seen),
                ms(merged.last_seen),
                now_ms,
                snapshot_id,
                data
            ])?;
        }
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO incident_cameras(camera, incident_id) VALUES (?1, ?2)",
            )?;
            for c in &merged.cameras {
                st.execute(params![c.as_ref(), merged.id])?;
            }
        }
        insert_revision(tx, &merged, "fusion", now_ms, &data)?;
        let notify =
            outcome_new || (is_open(merged.state) && self.worth_notifying(pending, &merged, false));
        if outcome_new {
            self.worth_notifying(pending, &merged, true);
        }
        if notify {
            let reason = if outcome_new {
                Reason::New
            } else {
                Reason::Update
            };
            self.queue_incident(tx, &merged, &data, reason, snapshot_id, now_ms)?;
        }
        let stored = StoredIncident {
            created_at: existing.as_ref().map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            escalations: existing.as_ref().map(|e| e.escalations).unwrap_or(0),
            snapshot_id,
            incident: merged.clone(),
        };
        let outcome = if outcome_new {
            ApplyOutcome::Created {
                id: merged.id,
                revision: merged.revision,
            }
        } else {
            ApplyOutcome::Updated {
                id: merged.id,
                revision: merged.revision,
                notified: notify,
            }
        };
        Ok((outcome, Some(stored)))
    }
}

/// A fusion revision over the stored incident. Fusion owns the evidence (cameras, sectors,
/// location, confidence, events, hotspots, the evidence summary, times, what changed), each
/// revision a bounded summary of all of it; the store keeps the operator's state, never
/// lowers a severity escalation raised, and keeps its own notes (operators' transitions,
/// escalations) with fusion's, deduplicated and bounded.
fn merge(old: &Incident, new: &Incident) -> Incident {
    let mut m = new.clone();
    m.id = old.id.clone();
    m.state = old.state;
    m.severity = old.severity.max(new.severity);
    m.revision = old.revision;
    m.notes = Vec::new();
    for n in old.notes.iter().chain(&new.notes) {
        if !m.notes.contains(n) {
            m.add_note(n.clone());
        }
    }
    m
}
