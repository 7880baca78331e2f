//! Serving HTTP over real TLS on loopback, with the two transport faults a handler cannot
//! express as a response: dropping the connection mid-request, and refusing connections.

use crate::tls::TlsIdentity;
use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Returned by a handler to kill the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, DropConnection>> + Send>>;

/// Answers one request from one peer.
pub type Handler = Arc<dyn Fn(Request<Incoming>, SocketAddr) -> HandlerFuture + Send + Sync>;

/// A running HTTPS server. Dropping it stops the server and every open connection.
pub struct HttpsServer {
    addr: SocketAddr,
    identity: TlsIdentity,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Serves `handler` with `identity` on `bind` (port 0 picks a free port).
    pub async fn serve(handler: Handler, identity: TlsIdentity, bind: SocketAddr) -> anyhow::Result<HttpsServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config()?);
        let down = Arc::new(AtomicBool::new(false));
        let gate = down.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if gate.load(Ordering::Relaxed) {
                    drop(tcp); // a BMC that is down: the client sees the connection die
                    continue;
                }
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |request| handler(request, peer));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http1_only()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(HttpsServer { addr, identity, down, task })
    }

    /// Serves an axum router (helpers and tests).
    pub async fn start(router: axum::Router, identity: TlsIdentity, bind: SocketAddr) -> anyhow::Result<HttpsServer> {
        let handler: Handler = Arc::new(move |request: Request<Incoming>, _peer| {
            let router = router.clone();
            Box::pin(async move { Ok(router.oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {})) })
        });
        HttpsServer::serve(handler, identity, bind).await
    }

    /// Starts a router on a free loopback port with a fresh self-signed identity.
    pub async fn start_local(router: axum::Router) -> anyhow::Result<HttpsServer> {
        HttpsServer::start(router, TlsIdentity::self_signed(&[])?, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate's SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        self.identity.sha256
    }

    /// The identity served.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// Takes the server down (connections are accepted and dropped at once) or back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
