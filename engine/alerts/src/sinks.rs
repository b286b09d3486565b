//! Sinks: where notifications go. Each sink runs in its own task (see [`crate::outbox`]);
//! a delivery either succeeds or returns an error that the outbox retries with backoff.

use std::path::PathBuf;
use std::time::Duration;

use lookout_config::alerts::SinkConfig;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::io::AsyncWriteExt;

use crate::export;
use crate::http::{HttpUrl, WebhookClient};
use crate::store::{Notification, Pending};

/// A running sink.
pub enum Sink {
    /// HTTP(S) POST.
    Webhook {
        /// Target, TLS trust and per-attempt timeout.
        client: WebhookClient,
        /// `Authorization` header value.
        auth: Option<String>,
    },
    /// MQTT publish, QoS 1, waiting for the broker's PUBACK.
    Mqtt(Box<MqttSink>),
    /// JSON lines appended to a file.
    Jsonl {
        /// File path.
        path: PathBuf,
        /// The open file (reopened after an error).
        file: Option<tokio::fs::File>,
    },
    /// One CAP XML file per revision.
    Cap {
        /// Directory.
        dir: PathBuf,
        /// CAP sender.
        sender: String,
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
                ..
            } => Sink::Webhook {
                client: WebhookClient::new(
                    &HttpUrl::parse(url.value())?,
                    ca_file.as_deref().map(std::path::Path::new),
                    Duration::from_secs_f64(*timeout_s),
                )?,
                auth: token.as_ref().map(|t| format!("Bearer {}", t.expose())),
            },
            SinkConfig::Mqtt {
                name,
                host,
                port,
                client_id,
                username,
                password,
                topic_prefix,
                timeout_s,
                ..
            } => {
                let id = client_id
                    .clone()
                    .unwrap_or_else(|| format!("lookout-{name}"));
                let mut opts = MqttOptions::new(id, host.clone(), *port);
                opts.set_keep_alive(Duration::from_secs(30));
                opts.set_clean_session(true);
                if let Some(u) = username {
                    opts.set_credentials(
                        u.value(),
                        password.as_ref().map(|p| p.expose()).unwrap_or(""),
                    );
                }
                Sink::Mqtt(Box::new(MqttSink {
                    opts,
                    prefix: topic_prefix.clone(),
                    timeout: Duration::from_secs_f64(*timeout_s),
                    conn: None,
                    last_used: None,
                }))
            }
            SinkConfig::Jsonl { path, .. } => Sink::Jsonl {
                path: data_dir.join(path),
                file: None,
            },
            SinkConfig::Cap { dir, .. } => Sink::Cap {
                dir: data_dir.join(dir),
                sender: cap_sender.to_string(),
            },
            SinkConfig::Geojson { dir, .. } => Sink::Geojson {
                dir: data_dir.join(dir),
            },
        })
    }

    /// Whether camera status notifications go to this sink.
    pub fn takes_camera_status(cfg: &SinkConfig) -> bool {
        matches!(cfg, SinkConfig::Mqtt { .. } | SinkConfig::Jsonl { .. })
    }

    /// Delivers one notification.
    pub async fn deliver(&mut self, p: &Pending) -> Result<(), String> {
        match self {
            Sink::Webhook { client, auth } => {
                let mut headers: Vec<(&str, &str)> = vec![("Idempotency-Key", p.key.as_str())];
                if let Some(a) = auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let code = client.post_json(&headers, p.json.as_bytes()).await?;
                if (200..300).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP status {code}"))
                }
            }
            Sink::Mqtt(m) => m.publish(p).await,
            Sink::Jsonl { path, file } => {
                if file.is_none() {
                    if let Some(parent) = path.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|e| format!("create {}: {e}", parent.display()))?;
                    }
                    *file = Some(
                        tokio::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&*path)
                            .await
                            .map_err(|e| format!("open {}: {e}", path.display()))?,
                    );
                }
                let Some(f) = file.as_mut() else {
                    return Err(format!("{} is not open", path.display()));
                };
                let mut line = Vec::with_capacity(p.json.len() + 1);
                line.extend_from_slice(p.json.as_bytes());
                line.push(b'\n');
                let r = async {
                    f.write_all(&line).await?;
                    f.flush().await
                }
                .await;
                if let Err(e) = r {
                    *file = None;
                    return Err(format!("write {}: {e}", path.display()));
                }
                Ok(())
            }
            Sink::Cap { dir, sender } => {
                let Notification::Incident { incident, .. } = &p.notification else {
                    return Ok(());
                };
                let xml = export::cap_xml(incident, sender, chrono::Utc::now());
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

impl MqttSink {
    async fn publish(&mut self, p: &Pending) -> Result<(), String> {
        let (topic, retain) = match &p.notification {
            Notification::Incident { incident, .. } => (
                format!("{}/incidents/{}", self.prefix, incident.kind.as_str()),
                false,
            ),
            Notification::CameraStatus { camera, .. } => {
                (format!("{}/cameras/{camera}/status", self.prefix), true)
            }
        };
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
        let r = tokio::time::timeout(timeout, self.publish_inner(&topic, retain, &p.json)).await;
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

    async fn publish_inner(&mut self, topic: &str, retain: bool, json: &str) -> Result<(), String> {
        let (client, eventloop) = self.conn.get_or_insert_with(|| {
            let (c, e) = AsyncClient::new(self.opts.clone(), 16);
            (c, e)
        });
        client
            .publish(topic, QoS::AtLeastOnce, retain, json.as_bytes().to_vec())
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
