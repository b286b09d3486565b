//! [`HotspotFeed`]: runs the `[[fusion.hotspots]]` sources — a file, a watched directory,
//! the FIRMS area API — each in its own thread, and sends new hotspots to fusion.
//!
//! Each source remembers the dedup keys it has sent ([`Hotspot::dedup_key`]), so a file
//! that changes or an API window that overlaps the last poll sends only what is new; the
//! duplicates are counted. The channel to fusion is bounded and blocking (nothing is
//! dropped); a blocked send still notices a stop request.
//!
//! The HTTP client is `ureq` with rustls: small, blocking, https without OpenSSL.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError};
use lookout_config::fusion::HotspotSourceConfig;
use lookout_config::Config;
use lookout_core::Hotspot;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::firms::{parse_file, parse_str};
use crate::index::DedupKey;
use crate::FusionError;

/// Counters shared by the source threads.
#[derive(Debug, Default)]
struct Counters {
    polls: AtomicU64,
    poll_errors: AtomicU64,
    files: AtomicU64,
    rows: AtomicU64,
    skipped_rows: AtomicU64,
    duplicates: AtomicU64,
    sent: AtomicU64,
    /// Per `firms_api` source, in config order.
    feeds: Vec<FeedCounters>,
}

/// Poll counters of one `firms_api` source.
#[derive(Debug)]
struct FeedCounters {
    feed: String,
    source: String,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Poll outcomes of one `firms_api` source (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedPollStats {
    /// Where it is configured: `fusion.hotspots[i]`.
    pub feed: String,
    /// The FIRMS source name it polls (`VIIRS_SNPP_NRT`, ...).
    pub source: String,
    /// Polls answered with a parsable CSV.
    pub successes: u64,
    /// Polls that failed (network, HTTP status, unparsable answer).
    pub failures: u64,
}

/// A snapshot of the feed's counters (for metrics and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// HTTP polls made.
    pub polls: u64,
    /// HTTP polls that failed.
    pub poll_errors: u64,
    /// Files parsed (file and dir sources).
    pub files: u64,
    /// Valid rows parsed.
    pub rows: u64,
    /// Bad rows skipped.
    pub skipped_rows: u64,
    /// Rows already sent before (same dedup key).
    pub duplicates: u64,
    /// Hotspots sent to fusion.
    pub sent: u64,
    /// Per `firms_api` source, in config order.
    pub feeds: Vec<FeedPollStats>,
}

/// The running hotspot sources.
#[derive(Debug)]
pub struct HotspotFeed {
    threads: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// What a source thread needs: where to send, when to stop, what to count.
#[derive(Clone)]
struct Ctx {
    tx: Sender<Hotspot>,
    stop: Receiver<()>,
    counters: Arc<Counters>,
}

impl Ctx {
    /// True once a stop was requested (a message, or every sender dropped).
    fn stopped(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(TryRecvError::Empty))
    }

    /// Sleeps up to `d`; true when stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        !matches!(self.stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    /// Sends the hotspots not yet in `seen`; false when fusion is gone or a stop came.
    fn send_new(&self, hs: Vec<Hotspot>, seen: &mut Dedup) -> bool {
        for h in hs {
            if !seen.insert(&h) {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut h = h;
            loop {
                match self.tx.send_timeout(h, Duration::from_millis(200)) {
                    Ok(()) => {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(SendTimeoutError::Timeout(back)) => {
                        if self.stopped() {
                            return false;
                        }
                        h = back;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => return false,
                }
            }
        }
        true
    }
}

/// The dedup keys a source has sent, forgetting those far older than the newest.
#[derive(Debug, Default)]
pub struct Dedup {
    keys: HashSet<DedupKey>,
    newest_min: i64,
    horizon_min: i64,
}

impl Dedup {
    /// Remembers keys for `horizon_min` minutes of acquisition time behind the newest.
    pub fn new(horizon_min: i64) -> Dedup {
        Dedup {
            keys: HashSet::new(),
            newest_min: i64::MIN,
            horizon_min,
        }
    }

    /// True when the hotspot is new (and remembers it).
    pub fn insert(&mut self, h: &Hotspot) -> bool {
        let k = h.dedup_key();
        if k.2 > self.newest_min {
            self.newest_min = k.2;
            if self.keys.len() > 100_000 {
                let cut = self.newest_min - self.horizon_min;
                self.keys.retain(|k| k.2 >= cut);
            }
        }
        self.keys.insert(k)
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl HotspotFeed {
    /// Starts one thread per `[[fusion.hotspots]]` source. Hotspots go to `tx` (bounded:
    /// the sources wait for fusion). Dropping every sender of `stop` (or sending one `()`
    /// per source) stops them; [`HotspotFeed::join`] waits for them.
    pub fn spawn(
        cfg: &Config,
        tx: Sender<Hotspot>,
        stop: Receiver<()>,
    ) -> Result<HotspotFeed, FusionError> {
        let counters = Arc::new(Counters {
            feeds: cfg
                .fusion
                .hotspots
                .iter()
                .enumerate()
                .filter_map(|(i, src)| match src {
                    HotspotSourceConfig::FirmsApi { source, .. } => Some(FeedCounters {
                        feed: format!("fusion.hotspots[{i}]"),
                        source: source.clone(),
                        ok: AtomicU64::new(0),
                        failed: AtomicU64::new(0),
                    }),
                    _ => None,
                })
                .collect(),
            ..Counters::default()
        });
        let ctx = Ctx {
            tx,
            stop,
            counters: counters.clone(),
        };
        let mut threads = Vec::new();
        let mut feed_index = 0;
        for (i, src) in cfg.fusion.hotspots.iter().enumerate() {
            let name = format!("hotspots-{i}-{}", src.kind());
            let ctx = ctx.clone();
            let spawn_err = |e: std::io::Error| FusionError::Io {
                path: PathBuf::from(&name),
                source: e,
            };
            let handle = match src {
                HotspotSourceConfig::File { path } => {
                    let path = cfg.resolve_path(path.value());
                    std::thread::Builder::new()
                        .name(name.clone())
                        .spawn(move || run_file(&path, &ctx))
                        .map_err(spawn_err)?
                }
                HotspotSourceConfig::Dir { path, scan_s } => {
                    let path = cfg.resolve_path(path.value());
                    let every = Duration::from_secs_f64(*scan_s);
                    std::thread::Builder::new()
                        .name(name.clone())
                        .spawn(move || run_dir(&path, every, &ctx))
                        .map_err(spawn_err)?
                }
                HotspotSourceConfig::FirmsApi {
                    base_url,
                    map_key,
                    source,
                    bbox,
                    days,
                    interval_s,
                    timeout_s,
                } => {
                    let mut poller = FirmsPoller::new(
                        base_url.value(),
                        map_key.expose(),
                        source,
                        *bbox,
                        *days,
                        Duration::from_secs_f64(*timeout_s),
                    );
                    let every = Duration::from_secs_f64(*interval_s);
                    let feed = feed_index;
                    feed_index += 1;
                    std::thread::Builder::new()
                        .name(name.clone())
                        .spawn(move || run_poll(&mut poller, every, feed, &ctx))
                        .map_err(spawn_err)?
                }
            };
            threads.push(handle);
        }
        Ok(HotspotFeed { threads, counters })
    }

    /// The counters so far.
    pub fn stats(&self) -> FeedStats {
        let c = &self.counters;
        FeedStats {
            polls: c.polls.load(Ordering::Relaxed),
            poll_errors: c.poll_errors.load(Ordering::Relaxed),
            files: c.files.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            skipped_rows: c.skipped_rows.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            feeds: c
                .feeds
                .iter()
                .map(|f| FeedPollStats {
                    feed: f.feed.clone(),
                    source: f.source.clone(),
                    successes: f.ok.load(Ordering::Relaxed),
                    failures: f.failed.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    /// True when every source thread has finished (file sources finish by themselves).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Waits for every source thread to finish (after a stop request).
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                error!("A hotspot source thread panicked.");
            }
        }
    }
}

fn count_parse(ctx: &Ctx, rows: usize, skipped: usize) {
    ctx.counters.files.fetch_add(1, Ordering::Relaxed);
    ctx.counters.rows.fetch_add(rows as u64, Ordering::Relaxed);
    ctx.counters
        .skipped_rows
        .fetch_add(skipped as u64, Ordering::Relaxed);
}

fn run_file(path: &Path, ctx: &Ctx) {
    match parse_file(path) {
        Ok(r) => {
            count_parse(ctx, r.hotspots.len(), r.skipped.len());
            info!(path = %path.display(), rows = r.hotspots.len(), skipped = r.skipped.len(), format = r.format.as_str(), "Read hotspot file.");
            let mut seen = Dedup::new(i64::MAX / 4);
            ctx.send_new(r.hotspots, &mut seen);
        }
        Err(e) => error!(error = %e, "Cannot read the hotspot file."),
    }
}

fn run_dir(dir: &Path, every: Duration, ctx: &Ctx) {
    let mut known: BTreeMap<PathBuf, (Option<SystemTime>, u64)> = BTreeMap::new();
    let mut seen = Dedup::new(14 * 24 * 60);
    let mut warned = false;
    loop {
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                warned = false;
                let mut now: BTreeMap<PathBuf, (Option<SystemTime>, u64)> = BTreeMap::new();
                for entry in rd.flatten() {
                    let p = entry.path();
                    let is_csv = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
                    if !is_csv {
                        continue;
                    }
                    if let Ok(md) = entry.metadata() {
                        if md.is_file() {
                            now.insert(p, (md.modified().ok(), md.len()));
                        }
                    }
                }
                for (p, sig) in &now {
                    if known.get(p) == Some(sig) {
                        continue;
                    }
                    match parse_file(p) {
                        Ok(r) => {
                            count_parse(ctx, r.hotspots.len(), r.skipped.len());
                            info!(path = %p.display(), rows = r.hotspots.len(), skipped = r.skipped.len(), "Read new or changed hotspot file.");
                            if !ctx.send_new(r.hotspots, &mut seen) {
                                return;
                            }
                        }
                        Err(e) => warn!(error = %e, "Skipped an unreadable hotspot file."),
                    }
                }
                known = now;
            }
            Err(e) => {
                if !warned {
                    warn!(dir = %dir.display(), error = %e, "Cannot list the hotspot directory; retrying.");
                    warned = true;
                }
            }
        }
        if ctx.sleep(every) {
            return;
        }
    }
}

fn run_poll(poller: &mut FirmsPoller, every: Duration, feed: usize, ctx: &Ctx) {
    let counters = ctx.counters.feeds.get(feed);
    loop {
        ctx.counters.polls.fetch_add(1, Ordering::Relaxed);
        match poller.fetch() {
            Ok(r) => {
                if let Some(c) = counters {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                }
                count_parse(ctx, r.hotspots.len(), r.skipped.len());
                info!(url = %poller.redacted_url(), rows = r.hotspots.len(), skipped = r.skipped.len(), "Polled FIRMS.");
                if !ctx.send_new(r.hotspots, &mut poller.seen) {
                    return;
                }
            }
            Err(e) => {
                ctx.counters.poll_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = counters {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                }
                warn!(error = %e, "FIRMS poll failed; retrying at the next interval.");
            }
        }
        if ctx.sleep(every) {
            return;
        }
    }
}

/// A FIRMS area API client: `{base}/api/area/csv/{MAP_KEY}/{SOURCE}/{W,S,E,N}/{DAYS}`.
pub struct FirmsPoller {
    agent: ureq::Agent,
    url: String,
    map_key: String,
    /// Dedup keys already sent (across polls).
    pub seen: Dedup,
}

impl std::fmt::Debug for FirmsPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmsPoller")
            .field("url", &self.redacted_url())
            .finish()
    }
}

/// Largest response body read (a 10-day global VIIRS file is ~100 MB; areas are far smaller).
const MAX_BODY: u64 = 256 * 1024 * 1024;

impl FirmsPoller {
    /// A poller for one area and source.
    pub fn new(
        base_url: &str,
        map_key: &str,
        source: &str,
        bbox: [f64; 4],
        days: u32,
        timeout: Duration,
    ) -> FirmsPoller {
        let url = format!(
            "{}/api/area/csv/{}/{}/{},{},{},{}/{}",
            base_url.trim_end_matches('/'),
            map_key,
            source,
            bbox[0],
            bbox[1],
            bbox[2],
            bbox[3],
            days
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build();
        FirmsPoller {
            agent,
            url,
            map_key: map_key.to_string(),
            seen: Dedup::new((days as i64 + 2) * 24 * 60),
        }
    }

    /// The request URL with the MAP_KEY replaced by `***` (safe to log).
    pub fn redacted_url(&self) -> String {
        self.redact(&self.url)
    }

    fn redact(&self, s: &str) -> String {
        if self.map_key.is_empty() {
            s.to_string()
        } else {
            s.replace(&self.map_key, "***")
        }
    }

    /// One request: every row of the response (dedup is the caller's, via `seen`).
    pub fn fetch(&self) -> Result<crate::firms::ParseReport, FusionError> {
        use std::io::Read;
        let http = |message: String| FusionError::Http {
            url: self.redacted_url(),
            message: self.redact(&message),
        };
        let resp = match self.agent.get(&self.url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let mut body = String::new();
                let _ = r.into_reader().take(300).read_to_string(&mut body);
                return Err(http(format!("HTTP status {code}: {}", body.trim())));
            }
            Err(ureq::Error::Transport(t)) => return Err(http(format!("request failed: {t}"))),
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| http(format!("reading the response failed: {e}")))?;
        parse_str(&String::from_utf8_lossy(&body), &self.redacted_url())
    }
}
