//! Cluster mode with real processes: `nats-server -js` on 127.0.0.1 (a free port, its own
//! store directory), three `lookout run --role edge` and one `--role hub` on file cameras.
//! One edge is killed with SIGKILL: its camera resumes on another edge within 30 s. The hub
//! is killed with SIGKILL mid-stream and started again: every incident that fusion makes of
//! the stream is in the hub's store, none twice. Incident clips are on: the edge that
//! owns a camera writes the clip and puts it in the site's object store, and the hub's
//! incidents get them (checked with ffprobe).

mod common;
use common::{api_call, shared};

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lookout_alerts::store::{IncidentFilter, Store};
use lookout_cluster::hub::{HubCore, HubSink};
use lookout_core::{Event, Hotspot, Incident};

/// Processes killed (SIGKILL) and reaped when the test ends, however it ends.
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Procs {
    fn add(&mut self, name: &str, c: Child) {
        self.0.push((name.to_string(), c));
    }
    fn kill(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.0.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// SIGTERM, then waits up to 15 s (SIGKILL after).
    fn stop(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.0.remove(i);
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

const CAMERAS: [&str; 3] = ["cam-a", "cam-b", "cam-c"];
const SITE: &str = "it";

fn config(dir: &Path, url: &str, node: &str) -> PathBuf {
    let video = shared().join("datasets/furg-house6/furg_house6.mp4");
    let mut cams = String::new();
    for c in CAMERAS {
        cams.push_str(&format!(
            "[[cameras]]\nid = \"{c}\"\nsource = {{ kind = \"file\", path = \"{}\", loop = true }}\nfps = 2\nmodels = [\"smoke-fire\"]\n\n",
            video.display()
        ));
    }
    let text = format!(
        r#"
[engine]
shutdown_deadline_s = 10

[ingest]
analysis_max_side = 640

[inference]
workers = 1
intra_threads = 1

[models.smoke-fire]
manifest = "{manifest}"

{cams}
[alerts]
snapshots = true

[alerts.clips]
enabled = true
pre_s = 1
post_s = 2
ring_mb = 8

[server]
enabled = false

[fusion]
update_interval_s = 0

[cluster]
nats = ["{url}"]
site = "{SITE}"
node = "{node}"
lease_ttl_s = 4
heartbeat_s = 1
"#,
        manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/smoke-fire.toml")
            .display(),
    );
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

fn lookout(config: &Path, role: &str, data: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--role", role, "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("LOOKOUT_SHARED", shared())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("lookout starts")
}

/// What the test saw on the events subjects: (camera, publishing node, when).
type Seen = Arc<Mutex<Vec<(String, String, Instant)>>>;

fn watch(rt: &tokio::runtime::Runtime, url: &str) -> Seen {
    let seen: Seen = Arc::default();
    let client = rt
        .block_on(async_nats::connect(url))
        .expect("the test connects to NATS");
    let mut sub = rt
        .block_on(client.subscribe(format!("lookout.{SITE}.cam.*.events")))
        .expect("subscribe");
    let s = seen.clone();
    rt.spawn(async move {
        let _keep = client;
        while let Some(m) = sub.next().await {
            let camera = m.subject.split('.').nth(3).unwrap_or("").to_string();
            let node = m
                .headers
                .as_ref()
                .and_then(|h| h.get(lookout_cluster::publish::NODE_HEADER))
                .map(|v| v.to_string())
                .unwrap_or_default();
            s.lock().unwrap().push((camera, node, Instant::now()));
        }
    });
    seen
}

/// The newest publishing node of each camera.
fn owners(seen: &Seen) -> BTreeMap<String, String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(c, n, _)| (c.clone(), n.clone()))
        .collect()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each incident's newest revision.
#[derive(Default)]
struct Revisions(BTreeMap<String, u64>);

impl HubSink for Revisions {
    fn event(&mut self, _: &Event) {}
    fn hotspots(&mut self, _: &[Hotspot]) {}
    fn incidents(&mut self, revisions: &[Incident]) -> bool {
        for i in revisions {
            let r = self.0.entry(i.id.clone()).or_default();
            *r = (*r).max(i.revision);
        }
        true
    }
}

#[test]
fn edge_killed_cameras_resume_hub_killed_nothing_lost_or_doubled() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut procs = Procs::default();
    procs.add(
        "nats",
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(tmp.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs it)"),
    );
    wait("nats-server to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let seen = watch(&rt, &url);
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");

    let hub_cfg = config(tmp.path(), &url, "hub");
    let hub_data = tmp.path().join("hub");
    let start_hub = |n: u32| {
        lookout(
            &hub_cfg,
            "hub",
            &hub_data,
            &logs.join(format!("hub{n}.log")),
        )
    };
    procs.add("hub", start_hub(1));
    let edges = ["edge0", "edge1", "edge2"];
    for e in edges {
        let cfg = config(tmp.path(), &url, e);
        procs.add(
            e,
            lookout(
                &cfg,
                "edge",
                &tmp.path().join(e),
                &logs.join(format!("{e}.log")),
            ),
        );
    }
    let dump_logs = || {
        for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!(
                "--- {} (last lines, newest first)\n{}",
                e.path().display(),
                tail.join("\n")
            );
        }
    };

    // Fair share: each edge ends up analysing one camera.
    let t0 = Instant::now();
    while {
        let o = owners(&seen);
        o.len() < 3 || o.values().collect::<BTreeSet<_>>().len() < 3
    } {
        if t0.elapsed() > Duration::from_secs(45) {
            dump_logs();
            panic!(
                "cameras not spread over the three edges: {:?}",
                owners(&seen)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "spread after {:.1} s: {:?}",
        t0.elapsed().as_secs_f64(),
        owners(&seen)
    );

    // A rules change on the hub (its config file here; the API works the same) reaches
    // every edge.
    let mut text = std::fs::read_to_string(&hub_cfg).expect("hub config");
    text.push_str("\n[rules]\nquiet_s = 47\n");
    std::fs::write(&hub_cfg, text).expect("hub config");
    wait(
        "every edge to apply the hub's rules",
        Duration::from_secs(15),
        || {
            edges.iter().all(|e| {
                std::fs::read_to_string(logs.join(format!("{e}.log")))
                    .unwrap_or_default()
                    .contains("Applied the rules the hub published.")
            })
        },
    );

    // SIGKILL the edge analysing cam-a: cam-a resumes on another edge.
    let victim = owners(&seen)["cam-a"].clone();
    procs.kill(&victim);
    let killed = Instant::now();
    let resumed = {
        let mut r = None;
        while r.is_none() {
            r = seen
                .lock()
                .unwrap()
                .iter()
                .find(|(c, n, at)| c == "cam-a" && *n != victim && *at > killed)
                .map(|(_, _, at)| at.duration_since(killed));
            if killed.elapsed() > Duration::from_secs(30) {
                dump_logs();
                panic!("cam-a did not resume within 30 s after {victim} was killed");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        r.unwrap_or_default()
    };
    eprintln!(
        "cam-a resumed {:.1} s after {victim} was killed",
        resumed.as_secs_f64()
    );
    assert!(resumed <= Duration::from_secs(30));

    // SIGKILL the hub mid-stream, then start it again.
    std::thread::sleep(Duration::from_secs(3));
    procs.kill("hub");
    std::thread::sleep(Duration::from_secs(2));
    procs.add("hub", start_hub(2));
    std::thread::sleep(Duration::from_secs(8));

    // Stop the edges (their last events are published), let the hub drain, stop it.
    for e in edges.iter().filter(|e| **e != victim) {
        procs.stop(e);
    }
    let never = AtomicBool::new(false);
    let cluster = lookout_config::cluster::ClusterConfig {
        nats: vec![url.clone()],
        site: SITE.into(),
        ..Default::default()
    };
    let js = rt.block_on(async {
        async_nats::jetstream::new(
            lookout_cluster::connect(&cluster, "test", &never)
                .await
                .expect("connect"),
        )
    });
    wait(
        "the hub to ack the whole stream",
        Duration::from_secs(20),
        || {
            rt.block_on(async {
                let stream = js.get_stream(format!("LOOKOUT_{SITE}")).await.ok()?;
                let last = stream.get_info().await.ok()?.state.last_sequence;
                let c = stream.consumer_info("hub").await.ok()?;
                Some(c.ack_floor.stream_sequence >= last)
            })
            .unwrap_or(false)
        },
    );
    procs.stop("hub");

    // The reference: one fusion over the whole stream, in stream order.
    let fusion_cfg = lookout_config::load(&hub_cfg).expect("config");
    let mut core = HubCore::new(&fusion_cfg).expect("fusion");
    let mut expected = Revisions::default();
    let n = rt.block_on(async {
        let stream = js
            .get_stream(format!("LOOKOUT_{SITE}"))
            .await
            .expect("stream");
        let last = stream.get_info().await.expect("info").state.last_sequence;
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("ordered consumer");
        let mut msgs = consumer.messages().await.expect("messages");
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(Ok(m)) = msgs.next().await {
            core.on_bytes(&m.payload, None, &mut out);
            expected.incidents(&out);
            out.clear();
            n += 1;
            if m.info().map(|i| i.stream_sequence).unwrap_or(0) >= last {
                break;
            }
        }
        n
    });

    let store = Store::open(&hub_data.join("lookout.db"), vec![], 600.0).expect("hub store");
    let listed = store
        .list_incidents(&IncidentFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .expect("incidents");
    // Snapshots: the hub holds no frames of the edges' cameras; each picture came from the
    // site's object store (put by the edge before it published the event).
    let mut pictured = 0;
    for s in &listed {
        let Some(id) = s.snapshot_id else { continue };
        let rec = store
            .snapshot(id)
            .expect("snapshot row")
            .expect("snapshot row exists");
        assert_eq!(rec.incident_id, s.incident.id);
        let jpeg = std::fs::read(&rec.path).expect("snapshot file");
        let frame = lookout_alerts::snapshot::decode_jpeg(
            &jpeg,
            rec.camera.as_str().into(),
            rec.seq,
            rec.captured_at,
        )
        .expect("the snapshot decodes");
        assert!(
            frame.width >= 64 && frame.height >= 64,
            "{}x{}",
            frame.width,
            frame.height
        );
        assert!(CAMERAS.contains(&rec.camera.as_str()), "{}", rec.camera);
        pictured += 1;
    }
    eprintln!("snapshots: {pictured} of {} incidents", listed.len());
    // Clips: the hub has no packets of the edges' cameras; each clip was written by the
    // edge that held the camera and fetched from the site's object store.
    let mut clipped = 0;
    for s in &listed {
        let id = &s.incident.id;
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mp4 = hub_data.join("clips").join(format!("{safe}.mp4"));
        let Ok(json) = std::fs::read(mp4.with_extension("json")) else {
            continue;
        };
        let info: lookout_core::ClipInfo = serde_json::from_slice(&json).expect("clip description");
        assert_eq!(
            &info.incident, id,
            "the description names the hub's incident"
        );
        assert!(CAMERAS.contains(&info.camera.as_str()), "{}", info.camera);
        assert!(info.remuxed && info.codec == "video/x-h264", "{info:?}");
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-of",
                "json",
                "-show_streams",
                "-show_format",
            ])
            .arg(&mp4)
            .output()
            .expect("ffprobe runs");
        assert!(
            out.status.success(),
            "{}: {}",
            mp4.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let probe: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
        assert_eq!(probe["streams"][0]["codec_name"], "h264", "{probe}");
        let duration: f64 = probe["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("duration");
        assert!(
            (duration - info.duration_s).abs() < 0.2 && duration > 0.5,
            "{duration} s, described {} s",
            info.duration_s
        );
        clipped += 1;
    }
    eprintln!("clips: {clipped} of {} incidents", listed.len());
    let stored: BTreeSet<String> = listed.into_iter().map(|s| s.incident.id).collect();
    // The edges' frame results reached the hub's store (tuning view, live overlay).
    let framed: BTreeSet<String> = store
        .all_frame_results()
        .expect("frame results")
        .into_iter()
        .map(|f| f.camera.to_string())
        .collect();
    assert_eq!(
        framed,
        CAMERAS
            .iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>(),
        "frame results of every camera at the hub"
    );
    let lines = std::fs::read_to_string(hub_data.join("incidents.jsonl")).unwrap_or_default();
    // incidents.jsonl: every fusion revision the hub stored (a duplicate is not logged).
    let mut revisions = BTreeSet::new();
    let mut doubled = Vec::new();
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("incidents.jsonl line");
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let rev = v["revision"].as_u64().unwrap_or_default();
        let r = logged.entry(id.clone()).or_default();
        *r = (*r).max(rev);
        if !revisions.insert((id.clone(), rev)) {
            doubled.push((id, rev));
        }
    }
    eprintln!(
        "stream: {n} messages; incidents: {} expected, {} stored",
        expected.0.len(),
        stored.len()
    );
    let expected_ids: BTreeSet<String> = expected.0.keys().cloned().collect();
    // benches/cluster/failover.sh reads these numbers.
    if let Ok(path) = std::env::var("LOOKOUT_CLUSTER_REPORT") {
        let report = serde_json::json!({
            "nodes": edges.len(),
            "cameras": CAMERAS.len(),
            "resume_s_max": (resumed.as_secs_f64() * 10.0).round() / 10.0,
            "incidents": expected_ids.len(),
            "incidents_lost": expected_ids.difference(&stored).count(),
            "incidents_duplicated": stored.difference(&expected_ids).count() + doubled.len(),
            "stream_messages": n,
        });
        std::fs::write(path, report.to_string()).expect("report");
    }
    if stored != expected_ids
        || !doubled.is_empty()
        || logged != expected.0
        || pictured == 0
        || clipped == 0
    {
        dump_logs();
    }
    assert!(
        !expected_ids.is_empty(),
        "the footage should raise incidents"
    );
    assert!(
        pictured > 0,
        "no incident from an edge got a snapshot through the object store"
    );
    assert!(
        clipped > 0,
        "no incident from an edge got a clip through the object store"
    );
    let lost: Vec<_> = expected_ids.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&expected_ids).collect();
    assert!(lost.is_empty(), "incidents lost: {lost:?}");
    assert!(extra.is_empty(), "incidents duplicated: {extra:?}");
    assert!(doubled.is_empty(), "revisions logged twice: {doubled:?}");
    assert_eq!(
        logged, expected.0,
        "every incident's newest revision reached the hub's store"
    );
}

#[test]
fn unreachable_nats_is_named_and_retried_without_exiting() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let cfg = config(tmp.path(), &url, "lonely");
    let log = tmp.path().join("edge.log");
    let mut procs = Procs::default();
    procs.add(
        "edge",
        lookout(&cfg, "edge", &tmp.path().join("data"), &log),
    );
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait("the error naming the URL", Duration::from_secs(20), || {
        said()
            .matches(&format!("Cannot reach NATS at {url}"))
            .count()
            >= 2
    });
    assert!(
        matches!(procs.0[0].1.try_wait(), Ok(None)),
        "the node keeps retrying instead of exiting:\n{}",
        said()
    );
    assert!(said().contains("retrying in"), "{}", said());
    // A stop while waiting for NATS is a clean exit.
    let t0 = Instant::now();
    procs.stop("edge");
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped promptly");
    assert!(
        said().contains("Stopped before NATS answered."),
        "{}",
        said()
    );
}

#[test]
fn cameras_changed_through_the_hub_api_reach_the_edges() {
    const ADMIN: &str = "cluster-cameras-admin-token-7";
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut procs = Procs::default();
    procs.add(
        "nats",
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(tmp.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs it)"),
    );
    wait("nats-server to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let seen = watch(&rt, &url);
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    // cam-c is disabled in the files; the hub serves its API.
    let http_port = free_port();
    let addr = format!("127.0.0.1:{http_port}");
    let edit = |path: &Path, server: bool| {
        let mut text = std::fs::read_to_string(path).expect("config");
        text = text.replace("id = \"cam-c\"\n", "id = \"cam-c\"\nenabled = false\n");
        if server {
            text = text.replace(
                "[server]\nenabled = false\n",
                &format!(
                    "[server]\nport = {http_port}\n\n[[server.users]]\nname = \"site-admin\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
                ),
            );
        }
        std::fs::write(path, text).expect("config");
    };
    let hub_cfg = config(tmp.path(), &url, "hub");
    edit(&hub_cfg, true);
    let edge_cfg = config(tmp.path(), &url, "edge0");
    edit(&edge_cfg, false);
    procs.add(
        "hub",
        lookout(
            &hub_cfg,
            "hub",
            &tmp.path().join("hub"),
            &logs.join("hub.log"),
        ),
    );
    procs.add(
        "edge0",
        lookout(
            &edge_cfg,
            "edge",
            &tmp.path().join("edge0"),
            &logs.join("edge0.log"),
        ),
    );
    let dump = || {
        for n in ["hub", "edge0"] {
            let text = std::fs::read_to_string(logs.join(format!("{n}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            eprintln!("--- {n} (newest first)\n{}", tail.join("\n"));
        }
    };
    let published = |cam: &str, after: Instant| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(c, _, t)| c == cam && *t > after)
            .count()
    };
    let t0 = Instant::now();
    while published("cam-a", t0) == 0 || published("cam-b", t0) == 0 {
        if t0.elapsed() > Duration::from_secs(60) {
            dump();
            panic!(
                "the edge does not analyse cam-a and cam-b: {:?}",
                owners(&seen)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(published("cam-c", t0), 0, "cam-c is disabled");

    // Enabled at the hub: the edge takes its lease and analyses it.
    let patch = |cam: &str, body: &str| {
        let t = Instant::now();
        loop {
            let (code, v) = api_call(
                &addr,
                ADMIN,
                "PATCH",
                &format!("/api/cameras/{cam}"),
                Some(body),
            );
            if code == 200 {
                return v;
            }
            if t.elapsed() > Duration::from_secs(20) {
                dump();
                panic!("PATCH {cam}: {code} {v}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let v = patch("cam-c", r#"{"patch": {"enabled": true}}"#);
    assert_eq!(v["live"]["started"], serde_json::json!(["cam-c"]), "{v}");
    let t1 = Instant::now();
    while published("cam-c", t1) == 0 {
        if t1.elapsed() > Duration::from_secs(60) {
            dump();
            panic!("cam-c enabled at the hub never reached the edge");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "cam-c analysed {:.1} s after the change",
        t1.elapsed().as_secs_f64()
    );

    // Disabled at the hub: the edge stops it; the others go on.
    let v = patch("cam-a", r#"{"patch": {"enabled": false}}"#);
    assert_eq!(v["live"]["stopped"], serde_json::json!(["cam-a"]), "{v}");
    std::thread::sleep(Duration::from_secs(8));
    let t2 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let after = published("cam-a", t2);
    if after > 0 || published("cam-b", t2) == 0 || published("cam-c", t2) == 0 {
        dump();
        panic!(
            "after disabling cam-a: cam-a {after}, cam-b {}, cam-c {} messages in 5 s",
            published("cam-b", t2),
            published("cam-c", t2)
        );
    }
    procs.stop("edge0");
    procs.stop("hub");
}
