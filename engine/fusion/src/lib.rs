//! # lookout-fusion
//!
//! Geo-fusion: where a detection points, where bearings cross, which satellite hotspots
//! agree, and which events and hotspots are one fire.
//!
//! ```text
//! Event ──▶ Fusion::on_event ──┐
//! Hotspot ─▶ Fusion::on_hotspot ├──▶ Vec<Incident> (a new revision of each incident that changed)
//! (camera, capture time) ▶ Fusion::on_camera_watermark ┤  (event time per camera)
//! Watermark ▶ Fusion::on_watermark ┘                      (one clock for every camera)
//! HotspotFeed (file · dir · FIRMS API threads) ──Hotspot──▶ (channel) ──▶ on_hotspot
//! ```
//!
//! Layout:
//! * [`camera`]: [`CameraGeometry`] from a camera's `geo`/`ptz` config; the pinhole bearing
//!   of a box (tilt and radial distortion included) and its cone ([`lookout_core::Sector`]).
//! * [`plane`]: a gnomonic tangent plane, least-squares triangulation with an uncertainty
//!   ellipse and near-parallel / short-baseline rejection, cone overlap, point in polygon.
//! * [`firms`]: the NASA FIRMS CSV parser (VIIRS NRT, MODIS NRT, archive), never panics;
//!   [`firms::parse_summary`] for `lookout hotspots parse`.
//! * [`index`]: [`index::HotspotIndex`], hotspots on a lat/lon grid with dedup.
//! * [`engine`]: [`Fusion`], the event-time join that builds incidents, split by job: time
//!   bases (`clock`), which incident an event joins (`grouping`), hotspots (`hotspots`),
//!   building an incident and emitting its bounded revisions (`incident`).
//! * [`feed`]: [`HotspotFeed`], the hotspot source threads, and [`feed::FirmsPoller`].
//! * [`stage`]: [`stage::FusionStage`], the fusion thread behind a handle (events, camera
//!   clocks and hotspots in, incident revisions out).
//! * [`geojson()`]: cameras, fields of view, incidents, bearings, hotspots for the map
//!   (through the one writer, `lookout_core::geojson`); [`map_cameras`]: the cameras alone.
//!
//! Fusion is deterministic and never reads the wall clock: replaying the same events and
//! hotspots gives the same incidents, ids and revisions.

#![warn(missing_docs)]

pub mod camera;
pub mod engine;
pub mod error;
pub mod feed;
pub mod firms;
mod geojson;
pub mod index;
pub mod plane;
pub mod stage;

pub use camera::{Bearing, CameraGeometry, View};
pub use engine::{Fusion, FusionStats};
pub use error::FusionError;
pub use feed::{FeedStats, FirmsPoller, HotspotFeed};
pub use firms::{parse_summary, ParseReport, ParseSummary};
pub use geojson::{geojson, map_cameras};
