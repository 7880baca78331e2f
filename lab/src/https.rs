//! Serving an axum router over real TLS on loopback.

use crate::tls::TlsIdentity;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A running HTTPS server. Dropping it stops the server and every open connection.
pub struct HttpsServer {
    addr: SocketAddr,
    sha256: [u8; 32],
    identity: TlsIdentity,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Serves `router` with `identity` on `bind` (port 0 picks a free port).
    pub async fn start(router: axum::Router, identity: TlsIdentity, bind: SocketAddr) -> anyhow::Result<HttpsServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config()?);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (tcp, _peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http1_only()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(HttpsServer { addr, sha256: identity.sha256, identity, task })
    }

    /// Starts on a free loopback port with a fresh self-signed identity.
    pub async fn start_local(router: axum::Router) -> anyhow::Result<HttpsServer> {
        HttpsServer::start(router, TlsIdentity::self_signed(&[])?, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate's SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The identity served.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
