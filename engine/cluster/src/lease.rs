//! Camera ownership by leases in a JetStream KV bucket (`lookout-leases-<site>`, history 1,
//! entries living `cluster.lease_ttl_s`).
//!
//! * `node.<node>`: a node's presence, refreshed every heartbeat; it disappears
//!   `lease_ttl_s` after the node stopped refreshing it (killed, cut off).
//! * `cam.<camera>`: the node analysing that camera. Taken with a create (only when no
//!   live lease exists), refreshed with a compare-and-set update on the revision the node
//!   holds (it fails if the lease expired and another node took it: the camera is lost), and
//!   released with a delete once the node has stopped analysing it.
//!
//! Fair share: every node computes the same assignment of the site's cameras to the live
//! nodes ([`assign`]: each camera goes to its highest-ranked node by rendezvous hash that
//! still has room, at most ⌈cameras / nodes⌉ each), releases what another live node should
//! hold and takes what is assigned to it and free. A camera is analysed by at most one node
//! at a time because a node stops analysing before it deletes the lease, and starts only
//! after its create succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::{self, kv};

use futures_util::StreamExt;
use lookout_config::cluster::ClusterConfig;

use crate::{js_err, ClusterError, Subjects};

/// What a heartbeat found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Held cameras the assignment gives to another live node: stop analysing them, then
    /// [`Leases::release`] them.
    pub release: Vec<String>,
    /// Cameras whose lease this node lost (it expired and another node took it): stop
    /// analysing them now.
    pub lost: Vec<String>,
    /// Cameras assigned to this node that it does not hold yet ([`Leases::take`]).
    pub wanted: Vec<String>,
    /// The live nodes, sorted.
    pub nodes: Vec<String>,
}

/// This node's leases.
pub struct Leases {
    kv: kv::Store,
    node: String,
    cameras: Vec<String>,
    /// Held camera → the lease's revision.
    held: BTreeMap<String, u64>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node", &self.node)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

fn cam_key(c: &str) -> String {
    format!("cam.{c}")
}

fn node_key(n: &str) -> String {
    format!("node.{n}")
}

/// FNV-1a of camera and node: the rendezvous rank of a node for a camera.
fn rank(camera: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in camera.bytes().chain([0u8]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Mix, so close inputs do not give close ranks.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The fair assignment of `cameras` to `nodes` (both sorted, nodes non-empty): camera →
/// node. The same inputs give the same answer on every node.
pub fn assign(cameras: &[String], nodes: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return out;
    }
    let cap = cameras.len().div_ceil(nodes.len());
    let mut load: BTreeMap<&str, usize> = nodes.iter().map(|n| (n.as_str(), 0)).collect();
    for c in cameras {
        let mut ranked: Vec<&String> = nodes.iter().collect();
        ranked.sort_by_key(|n| std::cmp::Reverse((rank(c, n), n.as_str())));
        if let Some(n) = ranked.into_iter().find(|n| load[n.as_str()] < cap) {
            *load.entry(n.as_str()).or_default() += 1;
            out.insert(c.clone(), n.clone());
        }
    }
    out
}

/// The site's lease bucket (created when missing).
async fn bucket(js: &jetstream::Context, cfg: &ClusterConfig) -> Result<kv::Store, ClusterError> {
    let bucket = Subjects::new(&cfg.site).lease_bucket();
    let kv = match js.get_key_value(bucket.clone()).await {
        Ok(kv) => kv,
        Err(_) => {
            // The bucket's stream as `create_key_value` would make it, created directly:
            // that call first asks for the account's limits, whose answer from
            // nats-server 2.9 (Debian 12) this client cannot read.
            js.get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("camera leases and node presence".into()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: Duration::from_secs_f64(cfg.lease_ttl_s),
                storage: jetstream::stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                num_replicas: cfg.stream.replicas,
                discard: jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(js_err)?;
            js.get_key_value(bucket).await.map_err(js_err)?
        }
    };
    Ok(kv)
}

impl Leases {
    /// Opens (or creates) the site's lease bucket for `node`, which can analyse `cameras`.
    pub async fn open(
        js: &jetstream::Context,
        cfg: &ClusterConfig,
        node: &str,
        cameras: &[String],
    ) -> Result<Leases, ClusterError> {
        let kv = bucket(js, cfg).await?;
        let mut cameras = cameras.to_vec();
        cameras.sort();
        Ok(Leases {
            kv,
            node: node.to_string(),
            cameras,
            held: BTreeMap::new(),
        })
    }

    /// The site's cameras changed (the hub published a new list): the next heartbeat plans
    /// with `cameras`, and releases held ones that are no longer in it.
    pub fn set_cameras(&mut self, cameras: &[String]) {
        let mut cameras = cameras.to_vec();
        cameras.sort();
        cameras.dedup();
        self.cameras = cameras;
    }

    /// The cameras this node holds.
    pub fn held(&self) -> BTreeSet<String> {
        self.held.keys().cloned().collect()
    }

    /// One heartbeat: refreshes this node's presence and its leases, and says what to
    /// release, what was lost and what to take.
    pub async fn heartbeat(&mut self) -> Result<Plan, ClusterError> {
        self.kv
            .put(node_key(&self.node), self.node.clone().into_bytes().into())
            .await
            .map_err(js_err)?;
        let mut plan = Plan::default();
        let held: Vec<(String, u64)> = self.held.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (cam, rev) in held {
            match self
                .kv
                .update(cam_key(&cam), self.node.clone().into_bytes().into(), rev)
                .await
            {
                Ok(r) => {
                    self.held.insert(cam, r);
                }
                Err(e) => {
                    tracing::warn!(camera = %cam, error = %e, "Lost the lease of a camera.");
                    self.held.remove(&cam);
                    plan.lost.push(cam);
                }
            }
        }
        let mut keys = self.kv.keys().await.map_err(js_err)?;
        let mut nodes = Vec::new();
        while let Some(k) = keys.next().await {
            if let Some(n) = k.map_err(js_err)?.strip_prefix("node.") {
                nodes.push(n.to_string());
            }
        }
        if !nodes.contains(&self.node) {
            nodes.push(self.node.clone());
        }
        nodes.sort();
        for cam in self.held.keys() {
            if self.cameras.binary_search(cam).is_err() {
                plan.release.push(cam.clone());
            }
        }
        for (cam, owner) in assign(&self.cameras, &nodes) {
            let mine = owner == self.node;
            match (mine, self.held.contains_key(&cam)) {
                (false, true) => plan.release.push(cam),
                (true, false) => plan.wanted.push(cam),
                _ => {}
            }
        }
        plan.nodes = nodes;
        Ok(plan)
    }

    /// Deletes the leases of `cameras` (call once they are no longer analysed here).
    pub async fn release(&mut self, cameras: &[String]) {
        for cam in cameras {
            if let Some(rev) = self.held.remove(cam) {
                if let Err(e) = self
                    .kv
                    .delete_expect_revision(cam_key(cam), Some(rev))
                    .await
                {
                    tracing::debug!(camera = %cam, error = %e, "Lease already gone.");
                }
            }
        }
    }

    /// Tries to take `cameras`; returns those taken (the others still have a live lease).
    pub async fn take(&mut self, cameras: &[String]) -> Vec<String> {
        let mut taken = Vec::new();
        for cam in cameras {
            match self
                .kv
                .create(cam_key(cam), self.node.clone().into_bytes().into())
                .await
            {
                Ok(rev) => {
                    self.held.insert(cam.clone(), rev);
                    taken.push(cam.clone());
                }
                Err(e) => {
                    tracing::debug!(camera = %cam, error = %e, "Camera still leased elsewhere.")
                }
            }
        }
        taken
    }

    /// Releases every lease and this node's presence (a clean stop hands the cameras over
    /// at once instead of after the lease time).
    pub async fn release_all(&mut self) {
        let all: Vec<String> = self.held.keys().cloned().collect();
        self.release(&all).await;
        let _ = self.kv.delete(node_key(&self.node)).await;
    }
}

/// The site's hub lease (`hub` in the lease bucket): one hub consumes the stream, a standby
/// waits for the lease to expire.
pub struct HubLease {
    kv: kv::Store,
    node: String,
    revision: Option<u64>,
}

impl std::fmt::Debug for HubLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLease")
            .field("node", &self.node)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl HubLease {
    /// The hub lease of `cfg.site` for `node`.
    pub async fn open(
        js: &jetstream::Context,
        cfg: &ClusterConfig,
        node: &str,
    ) -> Result<HubLease, ClusterError> {
        Ok(HubLease {
            kv: bucket(js, cfg).await?,
            node: node.to_string(),
            revision: None,
        })
    }

    /// Takes the lease, waiting (and saying who holds it) while another hub does. False
    /// when `stop` was set first.
    pub async fn acquire(
        &mut self,
        cfg: &ClusterConfig,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<bool, ClusterError> {
        let mut said = false;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            match self
                .kv
                .create("hub", self.node.clone().into_bytes().into())
                .await
            {
                Ok(rev) => {
                    self.revision = Some(rev);
                    return Ok(true);
                }
                Err(e) => {
                    if !said {
                        let holder = self
                            .kv
                            .get("hub")
                            .await
                            .ok()
                            .flatten()
                            .map(|b| String::from_utf8_lossy(&b).to_string())
                            .unwrap_or_default();
                        tracing::info!(holder = %holder, reason = %e, "Standing by: another hub holds the site's hub lease.");
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_secs_f64(cfg.heartbeat_s)).await;
                }
            }
        }
        Ok(false)
    }

    /// Refreshes the lease; [`ClusterError::LeaseLost`] when another hub holds it now.
    pub async fn refresh(&mut self) -> Result<(), ClusterError> {
        let Some(rev) = self.revision else {
            return Err(ClusterError::LeaseLost);
        };
        match self
            .kv
            .update("hub", self.node.clone().into_bytes().into(), rev)
            .await
        {
            Ok(r) => {
                self.revision = Some(r);
                Ok(())
            }
            Err(e) => {
                // A transient NATS error is not a lost lease unless someone else holds it.
                let holder = self.kv.get("hub").await.map_err(js_err)?;
                match holder {
                    Some(b) if b.as_ref() != self.node.as_bytes() => {
                        self.revision = None;
                        Err(ClusterError::LeaseLost)
                    }
                    _ => Err(js_err(e)),
                }
            }
        }
    }

    /// Gives the lease up (a clean stop: the standby takes over at once).
    pub async fn release(&mut self) {
        if let Some(rev) = self.revision.take() {
            let _ = self.kv.delete_expect_revision("hub", Some(rev)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{p}{i}")).collect()
    }

    #[test]
    fn assignment_is_fair_deterministic_and_mostly_stable() {
        let cams = names("cam", 12);
        let three = names("edge", 3);
        let a = assign(&cams, &three);
        assert_eq!(a, assign(&cams, &three));
        assert_eq!(a.len(), 12);
        for n in &three {
            assert_eq!(a.values().filter(|o| *o == n).count(), 4, "{a:?}");
        }
        // edge1 leaves: its cameras move, most of the others stay.
        let two = vec!["edge0".to_string(), "edge2".to_string()];
        let b = assign(&cams, &two);
        for n in &two {
            assert_eq!(b.values().filter(|o| *o == n).count(), 6);
        }
        let stayed = cams
            .iter()
            .filter(|c| a[*c] != "edge1" && a[*c] == b[*c])
            .count();
        assert!(stayed >= 5, "{stayed} of 8 stayed: {a:?} {b:?}");
        assert!(assign(&cams, &[]).is_empty());
    }
}
