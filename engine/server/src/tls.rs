//! HTTPS (`server.tls`): rustls with its `ring` backend (already built for the webhook
//! client; it also builds faster here than `aws-lc-rs`), the certificate and key read from
//! PEM files and **reloaded when either file changes** (polled every
//! [`RELOAD_POLL`]), without a restart: new connections get the new certificate, open ones
//! keep theirs. A pair that does not load (half-written, key of another certificate) is
//! logged and the previous certificate stays in use.
//!
//! [`TlsListener`] accepts TCP connections and runs each TLS handshake in its own task
//! (bounded in time and in number), so a slow or silent client never holds up others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 128;

/// A certificate or key that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TlsError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|e| TlsError {
        file: file.to_path_buf(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "not found".into()
        } else {
            format!("cannot read it: {e}")
        },
    })
}

/// Loads a certificate chain and its key, checking that the key is the certificate's.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let bad = |file: &Path, message: String| TlsError {
        file: file.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a valid PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "holds no PEM certificate".into()));
    }
    let der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| bad(key, format!("holds no usable PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => bad(
            key,
            format!("does not match the certificate in {}", cert.display()),
        ),
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            bad(cert, format!("cannot be used: {e}"))
        }
        other => bad(key, format!("cannot be used: {other}")),
    })
}

/// Resumable TLS sessions kept at most.
const SESSION_CACHE: usize = 256;

/// The certificate new connections get; replaced when the files change.
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    sessions: Arc<Sessions>,
}

/// The TLS session cache, emptied when the certificate changes.
#[derive(Debug)]
struct Sessions(RwLock<Arc<ServerSessionMemoryCache>>);

impl Sessions {
    fn cache(&self) -> Arc<ServerSessionMemoryCache> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn clear(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) =
            ServerSessionMemoryCache::new(SESSION_CACHE);
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache().put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What identifies a version of a file (modification time, size, inode).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

impl Reloading {
    /// Loads the pair (an error names the file at fault).
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Arc<Reloading>, TlsError> {
        let ck = load(&cert, &key)?;
        Ok(Arc::new(Reloading {
            cert,
            key,
            current: RwLock::new(Arc::new(ck)),
            sessions: Arc::new(Sessions(RwLock::new(ServerSessionMemoryCache::new(
                SESSION_CACHE,
            )))),
        }))
    }

    /// Polls the files and swaps in a changed pair that loads.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = (stamp(&self.cert), stamp(&self.key));
        loop {
            tokio::time::sleep(RELOAD_POLL).await;
            let now = (stamp(&self.cert), stamp(&self.key));
            if now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (self.cert.clone(), self.key.clone());
            match tokio::task::spawn_blocking(move || load(&cert, &key)).await {
                Ok(Ok(ck)) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ck);
                    self.sessions.clear();
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded.");
                }
                Ok(Err(e)) => tracing::warn!(error = %e,
                    "TLS certificate files changed but do not load; keeping the previous certificate."),
                Err(e) => tracing::warn!(error = %e, "TLS certificate reload failed."),
            }
        }
    }
}

/// Builds the rustls server config over a reloading certificate.
pub fn server_config(certs: Arc<Reloading>) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            file: certs.cert.clone(),
            message: format!("TLS setup failed: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    cfg.session_storage = certs.sessions.clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A listener that hands out connections once their TLS handshake is done.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TlsListener {
    /// Serves TLS on `tcp` with `certs` (and watches their files).
    pub fn new(tcp: TcpListener, certs: Arc<Reloading>) -> Result<TlsListener, TlsError> {
        let local = tcp.local_addr().map_err(|e| TlsError {
            file: certs.cert.clone(),
            message: format!("cannot serve TLS: {e}"),
        })?;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(certs.clone())?));
        let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let accept = tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "Accepting a connection failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer, error = %e, "TLS handshake failed.")
                        }
                        Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        let watch = tokio::spawn(certs.watch());
        Ok(TlsListener {
            rx,
            local,
            tasks: vec![accept, watch],
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
