//! Sinks: where notifications go. Each sink runs in its own task (see [`crate::outbox`]);
//! a delivery either succeeds or returns a [`DeliveryError`] saying whether to retry it,
//! pause the whole sink, or give up on it (dead letter).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::alerts::{MqttTls, SinkConfig};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};

use crate::export;
use crate::http::{HttpResponse, HttpUrl, WebhookClient};
use crate::store::{Notification, Pending};

/// What to do after a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This delivery failed for a passing reason (HTTP 408 or 5xx): retry it later with
    /// backoff; the sink's other deliveries go on.
    Retry,
    /// The receiver is unreachable or asks to slow down (network error, timeout, 429,
    /// `Retry-After`): retry later and pause the whole sink meanwhile.
    SinkDown,
    /// The receiver refuses this payload (HTTP 4xx other than 408/429): retry a few times
    /// (`retry.max_rejected`), then dead-letter it.
    Rejected,
    /// It can never be delivered (larger than the sink's limit): dead-letter it at once.
    Never,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What to do next.
    pub failure: Failure,
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
    /// Start of the receiver's answer.
    pub body: String,
    /// The receiver's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    /// The receiver could not be reached (network, file system, broker).
    pub fn down(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            failure: Failure::SinkDown,
            status: None,
            message: message.into(),
            body: String::new(),
            retry_after: None,
        }
    }

    /// Classifies a non-2xx HTTP answer.
    pub fn from_http(r: HttpResponse) -> DeliveryError {
        let failure = match r.status {
            429 => Failure::SinkDown,
            _ if r.retry_after.is_some() && (r.status == 503 || r.status == 408) => {
                Failure::SinkDown
            }
            408 | 500..=599 => Failure::Retry,
            _ => Failure::Rejected,
        };
        DeliveryError {
            failure,
            status: Some(r.status),
            message: format!("HTTP status {}", r.status),
            body: r.body,
            retry_after: r.retry_after,
        }
    }

    fn too_large(len: usize, max: u64) -> DeliveryError {
        DeliveryError {
            failure: Failure::Never,
            status: None,
            message: format!("payload of {len} bytes is over the sink's max_payload_bytes ({max})"),
            body: String::new(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A running sink.
pub enum Sink {
    /// HTTP(S) POST.
    Webhook {
        /// Target, TLS trust and per-attempt timeout.
        client: WebhookClient,
        /// `Authorization` header value.
        auth: Option<String>,
        /// Largest body sent.
        max_payload: u64,
    },
    /// MQTT publish, QoS 1, waiting for the broker's PUBACK.
    Mqtt(Box<MqttSink>),
    /// JSON lines appended to a file.
    Jsonl {
        /// File path.
        path: PathBuf,
        /// When the file is rotated (`[engine.retention]`).
        rotation: lookout_jsonl::Rotation,
        /// The open file (reopened after an error).
        file: Option<lookout_jsonl::RotatingFile>,
    },
    /// One CAP XML file per revision.
    Cap {
        /// Directory.
        dir: PathBuf,
        /// Sender, status, scope.
        options: export::CapOptions,
    },
    /// One GeoJSON Feature file per incident (latest revision).
    Geojson {
        /// Directory.
        dir: PathBuf,
    },
}

/// MQTT connection state (connected lazily, rebuilt after any error).
pub struct MqttSink {
    opts: MqttOptions,
    max_payload: u64,
    prefix: String,
    timeout: Duration,
    conn: Option<(AsyncClient, EventLoop)>,
    last_used: Option<std::time::Instant>,
}

impl Sink {
    /// Builds a sink from config; `data_dir` anchors relative paths.
    pub fn from_config(
        cfg: &SinkConfig,
        data_dir: &std::path::Path,
        cap_sender: &str,
    ) -> Result<Sink, String> {
        Ok(match cfg {
            SinkConfig::Webhook {
                url,
                token,
                timeout_s,
                ca_file,
                max_payload_bytes,
                ..
            } => Sink::Webhook {
                max_payload: *max_payload_bytes,
                client: WebhookClient::new(
                    &HttpUrl::parse(url.value())?,
                    ca_file.as_deref().map(std::path::Path::new),
                    Duration::from_secs_f64(*timeout_s),
                )?,
                auth: token.as_ref().map(|t| format!("Bearer {}", t.expose())),
            },
            SinkConfig::Mqtt {
                topic_prefix,
                timeout_s,
                max_payload_bytes,
                ..
            } => {
                let Some(opts) = mqtt_options(cfg, "")? else {
                    return Err("not an MQTT sink".into());
                };
                Sink::Mqtt(Box::new(MqttSink {
                    opts,
                    max_payload: *max_payload_bytes,
                    prefix: topic_prefix.clone(),
                    timeout: Duration::from_secs_f64(*timeout_s),
                    conn: None,
                    last_used: None,
                }))
            }
            SinkConfig::Jsonl { path, .. } => Sink::Jsonl {
                path: data_dir.join(path),
                rotation: lookout_jsonl::Rotation::NEVER,
                file: None,
            },
            SinkConfig::Cap {
                dir,
                status,
                scope,
                restriction,
                addresses,
                ..
            } => Sink::Cap {
                dir: data_dir.join(dir),
                options: export::CapOptions {
                    sender: cap_sender.to_string(),
                    status: status.clone(),
                    scope: scope.clone(),
                    restriction: restriction.clone(),
                    addresses: addresses.clone(),
                },
            },
            SinkConfig::Geojson { dir, .. } => Sink::Geojson {
                dir: data_dir.join(dir),
            },
        })
    }

    /// Rotates a `jsonl` sink's file by `rotation` (other sinks have no log).
    pub fn set_log_rotation(&mut self, r: lookout_jsonl::Rotation) {
        if let Sink::Jsonl { rotation, .. } = self {
            *rotation = r;
        }
    }

    /// Whether camera status notifications go to this sink.
    pub fn takes_camera_status(cfg: &SinkConfig) -> bool {
        matches!(cfg, SinkConfig::Mqtt { .. } | SinkConfig::Jsonl { .. })
    }

    /// Whether rule events and per camera and label counts go to this sink (an MQTT sink
    /// with `events = true`; other sinks keep their incident-only payloads).
    pub fn takes_events(cfg: &SinkConfig) -> bool {
        matches!(cfg, SinkConfig::Mqtt { events: true, .. })
    }

    /// Whether [`Sink::deliver`] needs the earlier notifications of the same incident
    /// ([`crate::store::Store::earlier`]): CAP's `<references>`.
    pub fn wants_earlier(&self) -> bool {
        matches!(self, Sink::Cap { .. })
    }

    /// Delivers one notification; `earlier`: the notifications of the same incident sent
    /// to this sink before (key, queued time), for sinks that [`Sink::wants_earlier`].
    pub async fn deliver(
        &mut self,
        p: &Pending,
        earlier: &[(String, lookout_core::UtcTime)],
    ) -> Result<(), DeliveryError> {
        match self {
            Sink::Webhook {
                client,
                auth,
                max_payload,
            } => {
                if p.json.len() as u64 > *max_payload {
                    return Err(DeliveryError::too_large(p.json.len(), *max_payload));
                }
                let mut headers: Vec<(&str, &str)> = vec![("Idempotency-Key", p.key.as_str())];
                if let Some(a) = auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = client
                    .post(&headers, p.json.as_bytes())
                    .await
                    .map_err(DeliveryError::down)?;
                if (200..300).contains(&r.status) {
                    Ok(())
                } else {
                    Err(DeliveryError::from_http(r))
                }
            }
            Sink::Mqtt(m) => {
                if p.json.len() as u64 > m.max_payload {
                    return Err(DeliveryError::too_large(p.json.len(), m.max_payload));
                }
                m.publish(p).await.map_err(DeliveryError::down)
            }
            _ => self
                .write_file(p, earlier)
                .await
                .map_err(DeliveryError::down),
        }
    }

    /// The file sinks (JSONL, CAP, GeoJSON).
    async fn write_file(
        &mut self,
        p: &Pending,
        earlier: &[(String, lookout_core::UtcTime)],
    ) -> Result<(), String> {
        match self {
            Sink::Webhook { .. } | Sink::Mqtt(_) => Ok(()),
            Sink::Jsonl {
                path,
                rotation,
                file,
            } => {
                if matches!(
                    p.notification,
                    Notification::Event { .. } | Notification::ObjectCount { .. }
                ) {
                    return Ok(());
                }
                // File work (open, append, rotate: flush + fsync + rename) off the runtime.
                let (path2, rotation, taken) = (path.clone(), *rotation, file.take());
                let json = p.json.clone();
                let (back, res) = tokio::task::spawn_blocking(move || {
                    let mut f = match taken {
                        Some(f) => f,
                        None => match lookout_jsonl::RotatingFile::open(&path2, rotation) {
                            Ok(f) => f,
                            Err(e) => return (None, Err(format!("open {}: {e}", path2.display()))),
                        },
                    };
                    match f.write_line(json.as_bytes()).and_then(|_| f.flush()) {
                        Ok(()) => (Some(f), Ok(())),
                        Err(e) => (None, Err(format!("write {}: {e}", path2.display()))),
                    }
                })
                .await
                .map_err(|e| format!("write {}: {e}", path.display()))?;
                *file = back;
                res
            }
            Sink::Cap { dir, options } => {
                let Notification::Incident { incident, .. } = &p.notification else {
                    return Ok(());
                };
                let refs: Vec<export::CapReference> = earlier
                    .iter()
                    .filter_map(|(key, sent)| {
                        let (id, rev) = key.rsplit_once(':')?;
                        Some(export::CapReference {
                            identifier: export::cap_identifier_of(id, rev.parse().ok()?),
                            sent: *sent,
                        })
                    })
                    .collect();
                // <sent> is when the revision was stored, not when this file is written.
                let xml = export::cap_message(incident, options, p.queued_at, &refs);
                let name = format!("{}.xml", export::cap_identifier(incident));
                write_atomic(dir, &name, xml.as_bytes()).await
            }
            Sink::Geojson { dir } => {
                let Notification::Incident { incident, .. } = &p.notification else {
                    return Ok(());
                };
                let f = export::incident_feature(incident);
                let name = format!(
                    "{}.geojson",
                    export::cap_identifier(incident)
                        .rsplit_once('-')
                        .map(|(b, _)| b.to_string())
                        .unwrap_or_default()
                );
                let body = serde_json::to_vec_pretty(&f).map_err(|e| e.to_string())?;
                write_atomic(dir, &name, &body).await
            }
        }
    }
}

async fn write_atomic(dir: &std::path::Path, name: &str, body: &[u8]) -> Result<(), String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, body)
        .await
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    tokio::fs::rename(&tmp, dir.join(name))
        .await
        .map_err(|e| format!("rename into {}: {e}", dir.display()))
}

/// The options of an MQTT sink's connection (`None` for another kind of sink): broker,
/// client id (`client_id`, default `lookout-<name>`, plus `suffix`), credentials, packet
/// size, TLS. Errors name the file that cannot be used.
pub fn mqtt_options(cfg: &SinkConfig, suffix: &str) -> Result<Option<MqttOptions>, String> {
    let SinkConfig::Mqtt {
        name,
        host,
        port,
        client_id,
        username,
        password,
        max_payload_bytes,
        tls,
        ..
    } = cfg
    else {
        return Ok(None);
    };
    let id = client_id
        .clone()
        .unwrap_or_else(|| format!("lookout-{name}"));
    let mut opts = MqttOptions::new(format!("{id}{suffix}"), host.clone(), *port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    if let Some(u) = username {
        opts.set_credentials(
            u.value(),
            password.as_ref().map(|p| p.expose()).unwrap_or(""),
        );
    }
    opts.set_max_packet_size(
        (*max_payload_bytes as usize).saturating_add(64 * 1024),
        (*max_payload_bytes as usize).saturating_add(64 * 1024),
    );
    if let Some(t) = tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            mqtt_tls_config(t)?,
        )));
    }
    Ok(Some(opts))
}

/// A rustls client configuration (ring provider) trusting only `ca_file`'s certificates,
/// presenting `client_cert`/`client_key` when both are set.
fn mqtt_tls_config(t: &MqttTls) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |path: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let list = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{path}: cannot read PEM certificates: {e}"))?;
        if list.is_empty() {
            return Err(format!("{path}: no PEM certificate in it"));
        }
        Ok(list)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&t.ca_file)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", t.ca_file))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots);
    let config = match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("{key}: cannot read the PEM private key: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("{cert}: the client certificate and key do not go together: {e}")
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Keeps an MQTT sink's availability connection until `shutdown`: connected with the last
/// will `<prefix>/available` = `offline` (retained, QoS 1), it publishes `online` (retained,
/// QoS 1) after every (re)connection, so a subscriber sees `offline` when the engine dies
/// (the broker publishes the will once the connection drops) and `online` while it runs.
/// On a clean stop it publishes `offline` itself, then disconnects. Separate from the
/// delivery connection, which is opened on demand and may be dropped between deliveries.
pub async fn mqtt_availability(
    mut opts: MqttOptions,
    prefix: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let topic = format!("{prefix}/available");
    opts.set_last_will(LastWill::new(&topic, "offline", QoS::AtLeastOnce, true));
    opts.set_keep_alive(Duration::from_secs(15));
    let broker = format!("{}:{}", opts.broker_address().0, opts.broker_address().1);
    let (client, mut events) = AsyncClient::new(opts, 8);
    let mut backoff = Duration::from_millis(500);
    let mut warned = false;
    loop {
        tokio::select! {
            r = events.poll() => match r {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(500);
                    warned = false;
                    if client
                        .try_publish(&topic, QoS::AtLeastOnce, true, "online")
                        .is_err()
                    {
                        tracing::warn!(topic = %topic, "Cannot queue the MQTT availability message.");
                    }
                    tracing::info!(broker = %broker, topic = %topic, "MQTT availability: online.");
                }
                Ok(_) => {}
                Err(e) => {
                    if !warned {
                        tracing::warn!(broker = %broker, error = %e, "MQTT availability connection failed; retrying.");
                        warned = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    // A clean DISCONNECT suppresses the will: say `offline` first.
    let _ = client.try_publish(&topic, QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// One MQTT message: topic, retained, payload.
type MqttMessage = (String, bool, Vec<u8>);

/// A topic level made from an id: `/`, `+`, `#` and NUL (which would change the topic's
/// shape or be refused by the broker) become `_`.
pub fn topic_level(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// The retained per-incident state (`<prefix>/incidents/<id>/state`): small, the current
/// state only.
#[derive(serde::Serialize)]
struct IncidentStateMsg<'a> {
    id: &'a str,
    kind: lookout_core::IncidentKind,
    state: lookout_core::IncidentState,
    revision: u64,
    confidence: lookout_core::IncidentConfidence,
    severity: lookout_core::Severity,
    location: &'a Option<lookout_core::Location>,
    cameras: &'a [lookout_core::CameraId],
    first_seen: lookout_core::UtcTime,
    last_seen: lookout_core::UtcTime,
}

/// Frigate's event message: `{"type": "new" | "update" | "end", "before", "after"}`.
#[derive(serde::Serialize)]
struct EventMsg<'a> {
    #[serde(rename = "type")]
    change: crate::events::EventChange,
    before: &'a Option<crate::events::EventState>,
    after: &'a crate::events::EventState,
}

/// The MQTT messages of a notification, published in order (see configs/README.md,
/// "MQTT topics").
pub fn mqtt_messages(prefix: &str, p: &Pending) -> Result<Vec<MqttMessage>, String> {
    Ok(match &p.notification {
        Notification::Incident { incident, .. } => {
            let state = serde_json::to_vec(&IncidentStateMsg {
                id: &incident.id,
                kind: incident.kind,
                state: incident.state,
                revision: incident.revision,
                confidence: incident.confidence,
                severity: incident.severity,
                location: &incident.location,
                cameras: &incident.cameras,
                first_seen: incident.first_seen,
                last_seen: incident.last_seen,
            })
            .map_err(|e| e.to_string())?;
            let state_topic = format!("{prefix}/incidents/{}/state", topic_level(&incident.id));
            let closed = incident.state == lookout_core::IncidentState::Closed;
            let mut v = vec![
                (
                    format!("{prefix}/incidents/{}", incident.kind.as_str()),
                    false,
                    p.json.as_bytes().to_vec(),
                ),
                // A closed incident's last state reaches those listening, and is not kept.
                (state_topic.clone(), !closed, state),
            ];
            if closed {
                // An empty retained message deletes the retained state at the broker.
                v.push((state_topic, true, Vec::new()));
            }
            v
        }
        Notification::CameraStatus { camera, .. } => vec![(
            format!("{prefix}/cameras/{}/status", topic_level(camera)),
            true,
            p.json.as_bytes().to_vec(),
        )],
        Notification::Event {
            change,
            before,
            after,
            ..
        } => vec![(
            format!("{prefix}/events"),
            false,
            serde_json::to_vec(&EventMsg {
                change: *change,
                before,
                after,
            })
            .map_err(|e| e.to_string())?,
        )],
        Notification::ObjectCount {
            camera,
            label,
            count,
            ..
        } => vec![(
            format!("{prefix}/{}/{}", topic_level(camera), topic_level(label)),
            true,
            count.to_string().into_bytes(),
        )],
    })
}

impl MqttSink {
    async fn publish(&mut self, p: &Pending) -> Result<(), String> {
        let messages = mqtt_messages(&self.prefix, p)?;
        // Between deliveries nobody polls the event loop (no keep-alive pings): a connection
        // idle for long may be gone, so start a fresh one.
        if self
            .last_used
            .is_some_and(|t| t.elapsed() > Duration::from_secs(20))
        {
            self.conn = None;
        }
        self.last_used = Some(std::time::Instant::now());
        let timeout = self.timeout;
        let r = tokio::time::timeout(timeout, async {
            for (topic, retain, payload) in messages {
                self.publish_inner(&topic, retain, payload).await?;
            }
            Ok(())
        })
        .await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(format!("no PUBACK within {:.1} s", timeout.as_secs_f64())),
        };
        if r.is_err() {
            // Start from a clean connection: nothing half-sent is left queued.
            self.conn = None;
        }
        r
    }

    async fn publish_inner(
        &mut self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let (client, eventloop) = self.conn.get_or_insert_with(|| {
            let (c, e) = AsyncClient::new(self.opts.clone(), 16);
            (c, e)
        });
        client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| format!("queue publish: {e}"))?;
        let mut pkid: Option<u16> = None;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(id))) => pkid = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if Some(ack.pkid) == pkid {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(format!("MQTT connection: {e}")),
            }
        }
    }
}
