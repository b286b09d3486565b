//! The transport against a real `nats-server -js` on 127.0.0.1 (a free port, its own store
//! directory): publishing is idempotent, the hub fuses what edges publish, rejects an
//! unknown wire version without stopping, and a restarted hub neither loses nor duplicates
//! an incident; an unreachable server is retried until the node is stopped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use lookout_cluster::hub::{HubCore, HubSink};
use lookout_cluster::publish::Publisher;
use lookout_config::cluster::ClusterConfig;
use lookout_core::wire::{FusionMsg, WireMsg};
use lookout_core::{Event, EventKind, EventPhase, Hotspot, Incident, UtcTime};

struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn start_nats(store: &Path) -> (Nats, String) {
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (scripts/setup.sh installs it)");
    let nats = Nats(child);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nats-server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (nats, format!("nats://127.0.0.1:{port}"))
}

fn t(s: i64) -> UtcTime {
    chrono::Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

fn smoke(camera: &str, track: u64, phase: EventPhase, first: i64, last: i64) -> Event {
    Event {
        id: format!("{camera}:smoke:{track}:{first}"),
        camera: camera.into(),
        kind: EventKind::Smoke,
        phase,
        track: Some(track),
        zone: None,
        preset: None,
        best_score: 0.8,
        first_seen: t(first),
        last_seen: t(last),
        bbox: None,
        frame_size: None,
        snapshot: None,
        count: None,
        detail: String::new(),
    }
}

/// A store that keeps the newest revision of each incident and answers "duplicate" for a
/// revision it has, like the alert store.
#[derive(Default, Clone)]
struct MemStore {
    incidents: Arc<Mutex<BTreeMap<String, u64>>>,
    events: Arc<Mutex<usize>>,
    duplicates: Arc<Mutex<usize>>,
}

impl HubSink for MemStore {
    fn event(&mut self, _: &Event) {
        *self.events.lock().unwrap() += 1;
    }
    fn hotspots(&mut self, _: &[Hotspot]) {}
    fn incidents(&mut self, revisions: &[Incident]) -> bool {
        let mut m = self.incidents.lock().unwrap();
        for i in revisions {
            let e = m.entry(i.id.clone()).or_insert(0);
            if i.revision <= *e {
                *self.duplicates.lock().unwrap() += 1;
            } else {
                *e = i.revision;
            }
        }
        true
    }
}

fn config(url: &str) -> (lookout_config::Config, ClusterConfig) {
    let toml = format!(
        r#"
[models.m]
manifest = "m.toml"

[[cameras]]
id = "tower1"
source = {{ kind = "file", path = "a.mp4" }}
models = ["m"]
geo = {{ lat = 36.2, lon = 27.86, alt_m = 1200, heading_deg = 140, hfov_deg = 60, range_m = 25000 }}

[fusion]
update_interval_s = 0

[cluster]
role = "hub"
nats = ["{url}"]
site = "test"
"#
    );
    let cfg = lookout_config::parse(&toml, "test.toml", Path::new(".")).expect("config");
    let cluster = cfg.cluster.clone();
    (cfg, cluster)
}

/// Runs a hub on its own thread and runtime until `stop`.
fn spawn_hub(
    cfg: lookout_config::Config,
    sink: MemStore,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Arc<lookout_cluster::hub::HubStats>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut core = HubCore::new(&cfg).expect("fusion");
        let stats = core.stats();
        let mut sink = sink;
        rt.block_on(async {
            let client = lookout_cluster::connect(&cfg.cluster, "hub", &stop)
                .await
                .expect("connect");
            let js = async_nats::jetstream::new(client);
            lookout_cluster::hub::run(&js, &cfg.cluster, &mut core, &mut sink, &stop)
                .await
                .expect("hub runs");
        });
        stats
    })
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn edge_to_hub_dedup_unknown_version_and_hub_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (_nats, url) = start_nats(&tmp.path().join("js"));
    let (cfg, cluster) = config(&url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let never = AtomicBool::new(false);
    let js = rt.block_on(async {
        let c = lookout_cluster::connect(&cluster, "edge", &never)
            .await
            .unwrap();
        let js = async_nats::jetstream::new(c);
        lookout_cluster::ensure_stream(&js, &cluster).await.unwrap();
        js
    });
    let publisher = Publisher::new(js.clone(), &cluster.site);
    let publish = |m: FusionMsg| {
        rt.block_on(publisher.publish(WireMsg::Fusion(m), &never))
            .unwrap()
    };

    // One fire on tower1: start, updates, each published twice (an edge retrying).
    let store = MemStore::default();
    let stop = Arc::new(AtomicBool::new(false));
    let hub = spawn_hub(cfg.clone(), store.clone(), stop.clone());
    for (phase, last) in [
        (EventPhase::Start, 0),
        (EventPhase::Update, 10),
        (EventPhase::Update, 20),
    ] {
        publish(FusionMsg::Event(smoke("tower1", 1, phase, 0, last)));
        publish(FusionMsg::Event(smoke("tower1", 1, phase, 0, last)));
        publish(FusionMsg::Clock {
            camera: "tower1".into(),
            at: t(last),
        });
    }
    let stats = publisher.stats();
    assert_eq!(stats.published.load(Ordering::Relaxed), 6);
    assert_eq!(
        stats.duplicates.load(Ordering::Relaxed),
        3,
        "the stream drops a republished message by its Nats-Msg-Id"
    );
    // A message from a future build: counted, acked, the hub goes on.
    rt.block_on(async {
        js.publish(
            "lookout.test.cam.tower1.events",
            br#"{"v":99,"msg":{"kind":"fusion","body":{}}}"#.to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    });
    publish(FusionMsg::Event(smoke(
        "tower1",
        1,
        EventPhase::Update,
        0,
        30,
    )));
    wait_for(
        "the hub to fuse four events",
        Duration::from_secs(15),
        || *store.events.lock().unwrap() == 4,
    );
    let before: BTreeMap<String, u64> = store.incidents.lock().unwrap().clone();
    assert_eq!(before.len(), 1, "one fire, one incident: {before:?}");
    let rev_before = *before.values().next().unwrap();
    stop.store(true, Ordering::SeqCst);
    let stats1 = hub.join().unwrap();
    assert_eq!(stats1.unknown_version.load(Ordering::Relaxed), 1);
    assert_eq!(stats1.events.load(Ordering::Relaxed), 4);

    // The same fire goes on while the hub is down; a new hub replays, then continues.
    publish(FusionMsg::Event(smoke(
        "tower1",
        1,
        EventPhase::Update,
        0,
        40,
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let hub = spawn_hub(cfg, store.clone(), stop.clone());
    wait_for(
        "the restarted hub to fuse the new event",
        Duration::from_secs(15),
        || *store.events.lock().unwrap() == 5,
    );
    // One more: the restarted hub's fusion knows the incident (it replayed the stream).
    publish(FusionMsg::Event(smoke(
        "tower1",
        1,
        EventPhase::Update,
        0,
        50,
    )));
    wait_for("the sixth event", Duration::from_secs(15), || {
        *store.events.lock().unwrap() == 6
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let stats2 = hub.join().unwrap();
    let after = store.incidents.lock().unwrap().clone();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no second incident after the restart"
    );
    assert!(
        after.values().next().unwrap() > &rev_before,
        "the incident's revisions go on after the restart: {rev_before} -> {after:?}"
    );
    assert!(
        stats2.replayed.load(Ordering::Relaxed) >= 8,
        "replayed the acked stream"
    );
    assert!(
        *store.duplicates.lock().unwrap() >= 1,
        "the replay re-produced revisions the store already had"
    );
}

#[test]
fn unreachable_nats_is_retried_until_stopped() {
    let port = free_port();
    let (_, mut cluster) = config(&format!("nats://127.0.0.1:{port}"));
    cluster.connect_timeout_s = 0.5;
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = Instant::now();
    let res = rt.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            s.store(true, Ordering::SeqCst);
        });
        lookout_cluster::connect(&cluster, "edge", &stop).await
    });
    assert!(
        matches!(res, Err(lookout_cluster::ClusterError::Stopped)),
        "{:?}",
        res.err()
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "kept retrying until stopped"
    );
}

#[test]
fn leases_share_cameras_fairly_and_expire_with_a_dead_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (_nats, url) = start_nats(&tmp.path().join("js"));
    let (_, mut cluster) = config(&url);
    cluster.lease_ttl_s = 2.0;
    cluster.heartbeat_s = 0.5;
    let cams: Vec<String> = (0..4).map(|i| format!("cam{i}")).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let never = AtomicBool::new(false);
    rt.block_on(async {
        let js = async_nats::jetstream::new(
            lookout_cluster::connect(&cluster, "t", &never)
                .await
                .unwrap(),
        );
        use lookout_cluster::lease::Leases;
        let mut a = Leases::open(&js, &cluster, "a", &cams).await.unwrap();
        // Alone: node a takes every camera.
        let plan = a.heartbeat().await.unwrap();
        assert_eq!(plan.nodes, vec!["a"]);
        assert_eq!(a.take(&plan.wanted).await.len(), 4);
        // Node b joins: a hands over half, b takes it only once released.
        let mut b = Leases::open(&js, &cluster, "b", &cams).await.unwrap();
        let plan_b = b.heartbeat().await.unwrap();
        assert_eq!(plan_b.wanted.len(), 2, "{plan_b:?}");
        assert!(b.take(&plan_b.wanted).await.is_empty(), "still leased by a");
        let plan_a = a.heartbeat().await.unwrap();
        assert_eq!(plan_a.release, plan_b.wanted);
        a.release(&plan_a.release).await;
        assert_eq!(b.take(&plan_b.wanted).await.len(), 2);
        assert_eq!(a.held().len() + b.held().len(), 4);
        assert!(a.held().is_disjoint(&b.held()));
        // Node a dies (no more heartbeats): after the lease time b takes everything.
        let t0 = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let plan = b.heartbeat().await.unwrap();
            b.take(&plan.wanted).await;
            if b.held().len() == 4 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "a's leases never expired"
            );
        }
        assert!(
            t0.elapsed() >= Duration::from_secs(1),
            "leases live their TTL"
        );
    });
}

#[test]
fn edges_follow_the_newest_rules_then_every_change() {
    use lookout_core::ControlMsg;
    let tmp = tempfile::tempdir().unwrap();
    let (_nats, url) = start_nats(&tmp.path().join("js"));
    let (_, cluster) = config(&url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let never = AtomicBool::new(false);
    let js = rt.block_on(async {
        let js = async_nats::jetstream::new(
            lookout_cluster::connect(&cluster, "hub", &never)
                .await
                .unwrap(),
        );
        lookout_cluster::ensure_stream(&js, &cluster).await.unwrap();
        js
    });
    let publisher = Publisher::new(js.clone(), &cluster.site);
    let rules = |v: i64| ControlMsg::Rules {
        version: v,
        rules: serde_json::json!({ "quiet_s": 30 + v }),
    };
    for v in [1, 2] {
        rt.block_on(publisher.publish(WireMsg::Control(rules(v)), &never))
            .unwrap();
    }
    let (tx, rx) = crossbeam_channel::bounded(8);
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (js, cluster, stop) = (js.clone(), cluster.clone(), stop.clone());
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(lookout_cluster::control::follow(
                    &js,
                    &cluster,
                    lookout_cluster::control::Topic::Rules,
                    &tx,
                    &stop,
                ))
        })
    };
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the rules in force");
    assert_eq!(
        first,
        rules(2),
        "a starting edge gets the newest rules only"
    );
    rt.block_on(publisher.publish(WireMsg::Control(rules(3)), &never))
        .unwrap();
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the change");
    assert_eq!(next, rules(3));
    stop.store(true, Ordering::SeqCst);
    follower.join().unwrap();
}

#[test]
fn a_standby_hub_waits_for_the_lease_and_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (_nats, url) = start_nats(&tmp.path().join("js"));
    let (cfg, _) = config(&url);
    let spawn = |node: &'static str, store: MemStore, stop: Arc<AtomicBool>| {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut core = HubCore::new(&cfg).expect("fusion");
            let stats = core.stats();
            let mut sink = store;
            rt.block_on(async {
                let c = lookout_cluster::connect(&cfg.cluster, node, &stop)
                    .await
                    .unwrap();
                let js = async_nats::jetstream::new(c);
                lookout_cluster::hub::run_with_lease(
                    &js,
                    &cfg.cluster,
                    node,
                    &mut core,
                    &mut sink,
                    &stop,
                )
                .await
                .unwrap();
            });
            stats
        })
    };
    let (active, standby) = (MemStore::default(), MemStore::default());
    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let a = spawn("hub-a", active.clone(), stop_a.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let b = spawn("hub-b", standby.clone(), stop_b.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let never = AtomicBool::new(false);
    let publisher = rt.block_on(async {
        let js = async_nats::jetstream::new(
            lookout_cluster::connect(&cfg.cluster, "edge", &never)
                .await
                .unwrap(),
        );
        lookout_cluster::ensure_stream(&js, &cfg.cluster)
            .await
            .unwrap();
        Publisher::new(js, &cfg.cluster.site)
    });
    let publish = |last| {
        rt.block_on(publisher.publish(
            WireMsg::Fusion(FusionMsg::Event(smoke(
                "tower1",
                1,
                EventPhase::Update,
                0,
                last,
            ))),
            &never,
        ))
        .unwrap()
    };
    publish(0);
    wait_for("the active hub to fuse", Duration::from_secs(15), || {
        *active.events.lock().unwrap() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        *standby.events.lock().unwrap(),
        0,
        "the standby does not consume"
    );
    // The active hub stops (releasing its lease): the standby replays and takes over.
    stop_a.store(true, Ordering::SeqCst);
    a.join().unwrap();
    publish(10);
    wait_for("the standby to take over", Duration::from_secs(15), || {
        *standby.events.lock().unwrap() == 1
    });
    assert_eq!(
        standby.incidents.lock().unwrap().keys().collect::<Vec<_>>(),
        active.incidents.lock().unwrap().keys().collect::<Vec<_>>(),
        "the standby's fusion continues the same incident"
    );
    stop_b.store(true, Ordering::SeqCst);
    let stats_b = b.join().unwrap();
    assert_eq!(stats_b.replayed.load(Ordering::Relaxed), 1);
}

#[test]
fn edge_snapshots_reach_the_hub_and_a_missing_one_is_skipped() {
    use lookout_cluster::snapshots::{self, Fetcher, Uploader};
    use lookout_core::FrameRef;
    let tmp = tempfile::tempdir().unwrap();
    let (_nats, url) = start_nats(&tmp.path().join("js"));
    let (cfg, cluster) = config(&url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let never = AtomicBool::new(false);
    let js = rt.block_on(async {
        async_nats::jetstream::new(
            lookout_cluster::connect(&cluster, "edge", &never)
                .await
                .unwrap(),
        )
    });
    let store = rt
        .block_on(snapshots::open(&js, &cluster))
        .expect("the bucket");
    // The edge: the frame's bytes are what its encoder gives (the object store keeps bytes).
    let encoded = Arc::new(Mutex::new(Vec::new()));
    let mut up = Uploader::new(
        Some(store.clone()),
        Box::new({
            let encoded = encoded.clone();
            move |r: &FrameRef| {
                encoded.lock().unwrap().push(r.seq);
                Some(format!("jpeg of {}/{}", r.camera, r.seq).into_bytes())
            }
        }),
    );
    let mut ev = smoke("tower1", 1, EventPhase::Start, 0, 0);
    ev.snapshot = Some(FrameRef {
        camera: "tower1".into(),
        seq: 7,
    });
    rt.block_on(up.upload(&ev));
    rt.block_on(up.upload(&ev));
    assert_eq!(*encoded.lock().unwrap(), vec![7], "a frame is put once");
    assert_eq!(up.stats().ok.load(Ordering::Relaxed), 1);

    // The hub: fusion's revision names the frame; the fetch runs inside `block_on`, as in
    // the hub's consuming loop.
    let mut core = HubCore::new(&cfg).unwrap();
    let mut out = Vec::new();
    core.on_msg(WireMsg::Fusion(FusionMsg::Event(ev)), None, &mut out);
    let inc = out.first().expect("a revision").clone();
    let mut fetcher = Fetcher::new(rt.handle().clone(), Some(store));
    let got = rt
        .block_on(async { fetcher.fetch(&inc) })
        .expect("the snapshot");
    assert_eq!(got.jpeg, b"jpeg of tower1/7");
    assert_eq!(got.frame.seq, 7);
    assert!(
        fetcher.fetch(&inc).is_none(),
        "the same frame is not fetched again"
    );
    // A frame no edge put: no picture, a warning, no failure, bounded.
    let mut gone = inc.clone();
    if let Some(e) = gone.events.iter_mut().rev().find(|e| e.snapshot.is_some()) {
        e.snapshot = Some(FrameRef {
            camera: "tower1".into(),
            seq: 8,
        });
    }
    let t0 = Instant::now();
    assert!(fetcher.fetch(&gone).is_none());
    assert!(t0.elapsed() <= snapshots::TIMEOUT + Duration::from_secs(1));
    assert_eq!(fetcher.stats().failed.load(Ordering::Relaxed), 1);
    // No bucket at all: the same.
    let mut none = Fetcher::new(rt.handle().clone(), None);
    assert!(none.fetch(&inc).is_none());
    assert_eq!(none.stats().failed.load(Ordering::Relaxed), 1);
}
