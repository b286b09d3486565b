//! # lookout-server
//!
//! The operator's desk: an HTTP API (axum), live updates (Server-Sent Events), Prometheus
//! metrics and the web UI, all served by the engine binary (the UI is embedded, no CDN).
//!
//! ## Layout
//! * [`ServerState`]: what the engine hands the server — the [`lookout_alerts::Alerts`]
//!   stage, the current config, camera frame rings, the [`metrics::Metrics`] registry and
//!   the rules stage's [`RulesControl`] (hot reload of overlays, masks and tuning, and the
//!   replay behind the tuning view).
//! * [`start`]: binds and serves; returns a [`RunningServer`] with the bound address.
//! * [`api`]: the handlers; [`tuning`]: threshold/persistence what-if over recorded frame
//!   results, and [`pr`] the models' precision/recall plots for it; [`masks`]: exclusion masks proposed from clustered false-alarm verdicts;
//!   [`overlay`]: API config changes as a versioned overlay over the TOML file (re-applied
//!   at start and on every file reload); [`camera_edit`]: cameras added, edited and
//!   disabled through the API, the same way; [`metrics`]: the registry; [`map`]: the vendored
//!   Leaflet, the basemap settings and MBTiles or PMTiles ([`pmtiles`]) tiles; [`clips`]: incident clips (MP4 with
//!   range requests) and their boxes timeline; `ui/`: the static page.
//!
//! Access ([`auth`], one middleware over every route): writes need `Authorization: Bearer
//! <token>` of a `[[server.users]]` entry whose role allows it (operator: incidents; admin:
//! config), and record that user's name; reads need a token of any role when
//! `server.read_access = "token"` (the default beyond loopback). [`tls`]: HTTPS with a
//! certificate reloaded when its files change. Errors are JSON:
//! `{"error": {"code", "message", "fields"?}}`.

pub mod api;
pub mod auth;
pub mod camera_edit;
pub mod cameras;
pub mod clips;
pub mod map;
pub mod masks;
pub mod metrics;
pub mod models;
pub mod overlay;
pub mod pmtiles;
pub mod pr;
pub mod tls;
pub mod tuning;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use lookout_alerts::Alerts;
use lookout_config::Config;
use lookout_core::FrameRing;

pub use lookout_rules::stage::RulesControl;
pub use metrics::Metrics;

/// The map's cameras with their fields of view (per PTZ preset), from fusion's camera
/// geometry, for `/api/geojson`; without it the cameras' `geo` from the config are drawn.
pub type GeojsonFn = Arc<dyn Fn() -> Vec<lookout_core::geojson::MapCamera> + Send + Sync>;

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used (the message names the file).
    #[error("server.tls: {0}")]
    Tls(#[from] tls::TlsError),
}

/// Everything the server needs, filled by the engine.
#[derive(Clone)]
pub struct ServerState {
    /// Store, lifecycle, live updates.
    pub alerts: Arc<Alerts>,
    /// The running configuration; the server replaces `rules` when a change is applied.
    pub config: Arc<RwLock<Config>>,
    /// Recent frames per camera id (live view); cameras started live add theirs.
    pub rings: Rings,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The running rules stage's control (hot reload, and the replay of the tuning view);
    /// without it config changes and the tuning replay answer 503.
    pub rules: Option<RulesControl>,
    /// Extra map features.
    pub geojson_extra: Option<GeojsonFn>,
    /// The config file's `[rules]` and the API overlay over them ([`overlay`]).
    pub layers: Arc<Mutex<overlay::Layers>>,
    /// Users (token hashes), read access and the failed-authentication limiter.
    pub access: Arc<auth::Access>,
    /// One tuning replay at a time (FIFO): a slider's what-if waits at most for one step
    /// of a tuning curve, and replays never take more than one core from the engine.
    pub replay_lane: Arc<tokio::sync::Semaphore>,
    /// The engine's model slots (shadow, promotion, rollback: [`models`]); without it
    /// `/api/models` answers 503.
    pub models: Option<Arc<dyn models::ModelControl>>,
    /// One model change at a time (promote, rollback, shadow start/stop).
    pub models_lane: Arc<tokio::sync::Mutex<()>>,
    /// The engine's running cameras ([`cameras::CameraControl`]); without it camera
    /// changes are stored and apply at the next start.
    pub cameras: Option<Arc<dyn cameras::CameraControl>>,
    /// The config file's `[[cameras]]` and the API's cameras record over them
    /// ([`camera_edit`]).
    pub camera_layers: Arc<Mutex<camera_edit::CameraLayers>>,
    /// One camera change at a time (add, edit, remove), applied in order.
    pub cameras_lane: Arc<tokio::sync::Mutex<()>>,
}

/// Each camera's ring of recent frames, shared with the engine (which adds and removes
/// rings as cameras start and stop live).
#[derive(Clone, Default)]
pub struct Rings(Arc<RwLock<HashMap<String, Arc<FrameRing>>>>);

impl Rings {
    /// Camera `id`'s ring.
    pub fn get(&self, id: &str) -> Option<Arc<FrameRing>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Sets camera `id`'s ring (a camera started or restarted).
    pub fn insert(&self, id: String, ring: Arc<FrameRing>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, ring);
    }

    /// Forgets camera `id`'s ring (the camera stopped).
    pub fn remove(&self, id: &str) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

impl ServerState {
    /// A state with no rings, no callbacks and a fresh metrics registry. `config` is the
    /// config file's (its `[rules]` and `[[cameras]]` are the file's, the overlays apply
    /// over them; call [`ServerState::load_overlay`] to apply the stored overlays).
    pub fn new(alerts: Arc<Alerts>, config: Config) -> ServerState {
        ServerState {
            layers: Arc::new(Mutex::new(overlay::Layers::new(config.rules.clone()))),
            camera_layers: Arc::new(Mutex::new(camera_edit::CameraLayers::new(
                config.cameras.clone(),
            ))),
            cameras_lane: Arc::new(tokio::sync::Mutex::new(())),
            access: Arc::new(auth::Access::new(&config.server)),
            alerts,
            config: Arc::new(RwLock::new(config)),
            rings: Rings::default(),
            metrics: Metrics::new(),
            rules: None,
            geojson_extra: None,
            replay_lane: Arc::new(tokio::sync::Semaphore::new(1)),
            models: None,
            models_lane: Arc::new(tokio::sync::Mutex::new(())),
            cameras: None,
        }
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A server that is running.
pub struct RunningServer {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// `https` when `server.tls` is set, else `http`.
    pub scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// The UI's address, e.g. `https://127.0.0.1:8443/`.
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme, self.addr)
    }

    /// Stops accepting, finishes in-flight requests (live streams are cut), and waits.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

/// Binds `addr` and serves the API and UI until [`RunningServer::stop`]: over TLS when
/// `server.tls` is set (a certificate or key that cannot be used is an error naming the
/// file).
pub async fn start(state: ServerState, addr: SocketAddr) -> Result<RunningServer, ServerError> {
    let cfg = state.config();
    {
        let cfg = cfg.clone();
        // Header and root directory reads: small, but file I/O.
        let _ = tokio::task::spawn_blocking(move || map::open_configured(&cfg)).await;
    }
    let certs = match &cfg.server.tls {
        Some(t) => Some(tls::Reloading::new(
            cfg.resolve_path(&t.cert),
            cfg.resolve_path(&t.key),
        )?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind { addr, source: e })?;
    let bound = listener
        .local_addr()
        .map_err(|e| ServerError::Bind { addr, source: e })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = api::router(state).into_make_service_with_connect_info::<auth::ClientAddr>();
    let stop = async move {
        let _ = rx.await;
    };
    let scheme = if certs.is_some() { "https" } else { "http" };
    let task = match certs {
        Some(certs) => {
            let listener = tls::TlsListener::new(listener, certs)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "HTTPS server failed.");
                }
            })
        }
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed.");
            }
        }),
    };
    let read_access = cfg.server.effective_read_access();
    if cfg.server.open_beyond_loopback() {
        tracing::warn!(addr = %bound, "server.read_access = \"open\" on an address beyond this machine: anyone who reaches it sees every camera, snapshot and incident without a token.");
    }
    tracing::info!(addr = %bound, scheme, read_access = read_access.as_str(), "Web UI and API listening.");
    Ok(RunningServer {
        addr: bound,
        scheme,
        stop: Some(tx),
        task,
    })
}

/// The address `[server]` asks for.
pub fn configured_addr(cfg: &Config) -> SocketAddr {
    let ip = cfg
        .server
        .bind
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, cfg.server.port)
}
