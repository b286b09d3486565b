//! Versioned config changes made from the UI/API.

use lookout_core::UtcTime;
use rusqlite::params;
use serde::Serialize;

use super::{from_ms, ms, Store, StoreError};

/// A stored config change.
#[derive(Debug, Clone, Serialize)]
pub struct OverlayRecord {
    /// Monotonic version.
    pub version: i64,
    /// Config section changed (`rules`).
    pub section: String,
    /// When.
    pub at: UtcTime,
    /// Who.
    pub author: String,
    /// Why.
    pub comment: String,
    /// The change (JSON).
    pub body: serde_json::Value,
}

impl Store {
    /// Stores a config change; returns its version.
    pub fn add_overlay(
        &self,
        section: &str,
        author: &str,
        comment: &str,
        body: &serde_json::Value,
        now: UtcTime,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO config_overlays(section, at, author, comment, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![section, ms(now), author, comment, serde_json::to_string(body)?],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Config changes, newest first.
    pub fn overlays(&self, limit: u32) -> Result<Vec<OverlayRecord>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT version, section, at, author, comment, body FROM config_overlays
             ORDER BY version DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (version, section, at, author, comment, body) = r?;
            out.push(OverlayRecord {
                version,
                section,
                at: from_ms(at),
                author,
                comment,
                body: serde_json::from_str(&body)?,
            });
        }
        Ok(out)
    }

    /// The newest config change of one section (`rules`, `models`).
    pub fn latest_overlay(&self, section: &str) -> Result<Option<OverlayRecord>, StoreError> {
        let conn = self.read();
        let mut st = conn.prepare_cached(
            "SELECT version, section, at, author, comment, body FROM config_overlays
             WHERE section = ?1 ORDER BY version DESC LIMIT 1",
        )?;
        let mut rows = st.query(params![section])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(OverlayRecord {
            version: r.get(0)?,
            section: r.get(1)?,
            at: from_ms(r.get(2)?),
            author: r.get(3)?,
            comment: r.get(4)?,
            body: serde_json::from_str(&r.get::<_, String>(5)?)?,
        }))
    }
}
