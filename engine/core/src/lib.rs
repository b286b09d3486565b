//! # lookout-core
//!
//! The types that flow between Lookout's stages, and nothing that does I/O.
//!
//! ```text
//! ingest ──Frame──▶ infer ──StageMsg::Frame(FrameResult)──▶ rules ──Event──▶ fusion ──Incident──▶ alerts
//!        ──CameraHealth──────▶ (forwarded in-band, so an empty frame and a dead camera never look alike)
//! ```
//!
//! * [`frame`]: [`Frame`] (RGB pixels at analysis resolution, capture time, pose) and
//!   [`FrameRing`], the per-camera ring of recent frames used for snapshots.
//! * [`clip`]: [`ClipRequest`] and [`ClipSink`], what the incidents stage asks of ingest's
//!   clip writer when an incident opens, and [`ClipInfo`], the description beside a clip.
//! * [`detect`]: [`BBox`], [`Detection`], [`FrameResult`] — one per analysed frame and model,
//!   empty ones included.
//! * [`health`]: [`CameraStatus`] and [`CameraHealth`], stream health as data.
//! * [`event`]: [`Event`] with [`EventKind`] and [`EventPhase`] (start / update / end).
//! * [`geo`]: [`GeoPoint`], great-circle distance and bearing, [`Sector`].
//! * [`geojson`]: the one GeoJSON writer ([`geojson::FeatureCollection`]) and its property
//!   schema, for the map, the CLI and the `geojson` sink.
//! * [`hotspot`]: [`Hotspot`], a satellite fire pixel (NASA FIRMS).
//! * [`incident`]: [`Incident`], many events and hotspots of one fire (or one personnel
//!   situation) with a confidence level and a revision.
//! * [`metrics`]: [`metrics::Histogram`], the lock-free histogram stages observe into.
//! * [`progress`]: [`progress::Progress`], the count, rate and ETA line of long commands.
//! * [`msg`]: [`StageMsg`], what travels on the channel between inference and rules.
//! * [`wire`]: the other messages between stages ([`FusionMsg`], [`HotspotBatch`],
//!   [`ControlMsg`]) and the versioned [`Envelope`] they travel in between processes.

pub mod clip;
pub mod detect;
pub mod event;
pub mod frame;
pub mod geo;
pub mod geojson;
pub mod health;
pub mod hotspot;
pub mod hub;
pub mod incident;
pub mod metrics;
pub mod msg;
pub mod progress;
pub mod wire;

pub use clip::{ClipInfo, ClipRequest, ClipSink};
pub use detect::{BBox, Detection, FrameResult, RoleTag, UNKNOWN_ROLE};
pub use event::{Event, EventKind, EventPhase, FrameRef};
pub use frame::{CaptureClock, Frame, FrameRing, Pixels, Pose};
pub use geo::{GeoPoint, Sector};
pub use health::{CameraHealth, CameraStatus, RetryReason, StopReason};
pub use hotspot::{Hotspot, HotspotConfidence, HotspotSource};
pub use hub::{FrameHub, HubStats, PublishError};
pub use incident::{
    Incident, IncidentConfidence, IncidentKind, IncidentState, Location, LocationMethod, Severity,
    UncertaintyEllipse,
};
pub use msg::StageMsg;
pub use wire::{ControlMsg, Envelope, FusionMsg, HotspotBatch, WireError, WireMsg, WIRE_VERSION};

/// A camera's configured identifier (`[[cameras]] id = "..."`). Cheap to clone.
pub type CameraId = std::sync::Arc<str>;

/// UTC time as used everywhere in Lookout.
pub type UtcTime = chrono::DateTime<chrono::Utc>;
