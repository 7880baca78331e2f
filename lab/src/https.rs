//! Serving HTTP over real TLS on loopback, with the two transport faults a handler cannot
//! express as a response: dropping the connection mid-request, and refusing connections.
//!
//! One [`Listener`] is one listening socket, however many sites it serves. Each site (a
//! simulated BMC) has its own loopback address — `127.0.0.1`, `127.0.0.2`, … on the listener's
//! one port — and an accepted connection goes to the site registered for the address the client
//! connected to, which the kernel reports for the accepted socket (`getsockname`). So a fleet of
//! 10,000 BMCs costs one descriptor to listen, not 10,000.
//!
//! Loopback only: on Linux a fleet's socket is bound to the wildcard address **and** to the
//! loopback device (`SO_BINDTODEVICE lo`, allowed without privilege since Linux 5.7), so it
//! accepts connections to any `127.x.y.z` and none that arrive on another interface — other
//! hosts cannot reach it, as if it were bound to `127.0.0.1`. A connection to a local address
//! that is not loopback (or to a loopback address with no site) is closed at once.

use crate::tls::TlsIdentity;
use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::{TcpListener, TcpSocket};
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

/// The loopback address of site number `index` of a fleet: `127.0.0.1`, `127.0.0.2`, …,
/// `127.0.0.254`, `127.0.1.1`, … (last octets 0 and 255 are skipped, so no address looks like a
/// network or broadcast address to a tool that assumes /24s).
pub fn loopback_address(index: usize) -> Ipv4Addr {
    let (net, host) = (index / 254, index % 254 + 1);
    Ipv4Addr::new(127, (net >> 8) as u8, net as u8, host as u8)
}

/// What one site serves: its certificate and handler, and its own connections.
struct Site {
    acceptor: tokio_rustls::TlsAcceptor,
    handler: Handler,
    down: Arc<AtomicBool>,
    /// Dropped with the site, which aborts every connection it has open.
    connections: Mutex<JoinSet<()>>,
}

type Sites = Arc<RwLock<HashMap<IpAddr, Arc<Site>>>>;

/// `bind()`, retried for up to two seconds while a fixed `port` is in use. A listener just dropped
/// (a lab or PEP restarted in the same process) closes its socket only when its aborted task is
/// next polled: give it that moment before calling the port taken by someone else.
pub(crate) async fn bind_when_free<T>(port: u16, bind: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut waited = 0;
    loop {
        match bind() {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 && waited < 20 => {
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            bound => return bound,
        }
    }
}

/// One listening socket serving sites at many loopback addresses on one port. Dropping it stops
/// accepting; each site's connections end when its [`SiteHandle`] is dropped.
pub struct Listener {
    port: u16,
    sites: Sites,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// A listener for a fleet: every loopback address on `port` (0 picks a free port), reachable
    /// from this host only (see the module's documentation).
    pub async fn loopback(port: u16) -> anyhow::Result<Arc<Listener>> {
        let listener = bind_when_free(port, || Listener::bind_loopback(port)).await.map_err(|e| bind_error(port, e))?;
        Listener::run(listener)
    }

    fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            socket
                .bind_device(Some(b"lo"))
                .map_err(|e| std::io::Error::other(format!("cannot bind to the loopback device: {e}")))?;
            socket.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        }
        // Elsewhere only 127.0.0.1 is served: the one loopback address every system has.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        socket.listen(4096)
    }

    /// A listener on exactly `bind` (port 0 picks a free port).
    pub async fn bind(bind: SocketAddr) -> anyhow::Result<Arc<Listener>> {
        Listener::run(TcpListener::bind(bind).await.map_err(|e| bind_error(bind.port(), e))?)
    }

    fn run(listener: TcpListener) -> anyhow::Result<Arc<Listener>> {
        let port = listener.local_addr()?.port();
        let sites: Sites = Arc::default();
        let routes = sites.clone();
        let task = tokio::spawn(async move {
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
                let Some(site) = tcp.local_addr().ok().and_then(|local| route(&routes, local.ip())) else {
                    continue; // not loopback, or no site there: the client sees the connection close
                };
                if site.down.load(Ordering::Relaxed) {
                    continue; // a BMC that is down: the connection dies at once
                }
                let (acceptor, handler) = (site.acceptor.clone(), site.handler.clone());
                let mut connections = site.connections.lock().expect("connection set poisoned");
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
        Ok(Arc::new(Listener { port, sites, task }))
    }

    /// The port every site of this listener is on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `handler` with `identity` at `ip` (a loopback address; the unspecified address
    /// takes connections to any address no other site has). Refused if `ip` is taken.
    pub fn add(self: &Arc<Self>, ip: IpAddr, identity: &TlsIdentity, handler: Handler) -> anyhow::Result<SiteHandle> {
        anyhow::ensure!(ip.is_loopback() || ip.is_unspecified(), "{ip} is not a loopback address");
        let site = Arc::new(Site {
            acceptor: tokio_rustls::TlsAcceptor::from(identity.server_config()?),
            handler,
            down: Arc::default(),
            connections: Mutex::default(),
        });
        let mut sites = self.sites.write().expect("site table poisoned");
        anyhow::ensure!(!sites.contains_key(&ip), "{ip}:{} already serves a site", self.port);
        sites.insert(ip, site.clone());
        Ok(SiteHandle { listener: self.clone(), ip, down: site.down.clone() })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn route(sites: &Sites, local: IpAddr) -> Option<Arc<Site>> {
    if !local.is_loopback() {
        return None;
    }
    let sites = sites.read().expect("site table poisoned");
    let unspecified = IpAddr::from([0, 0, 0, 0]);
    sites.get(&local).or_else(|| sites.get(&unspecified)).cloned()
}

fn bind_error(port: u16, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!("port {port} is in use (another lab still running?)")
    } else {
        anyhow::anyhow!("cannot listen on port {port}: {e}")
    }
}

/// A site served by a [`Listener`]. Dropping it stops the site and every connection it has open.
pub struct SiteHandle {
    listener: Arc<Listener>,
    ip: IpAddr,
    down: Arc<AtomicBool>,
}

impl SiteHandle {
    /// Where the site is served.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.listener.port)
    }

    /// Takes the site down (connections are accepted and dropped at once) or back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

impl Drop for SiteHandle {
    fn drop(&mut self) {
        // The removed site, dropped outside the lock: that aborts its connections.
        let site = self.listener.sites.write().expect("site table poisoned").remove(&self.ip);
        drop(site);
    }
}

/// A running HTTPS server with a listener of its own. Dropping it stops the server and every
/// open connection.
pub struct HttpsServer {
    addr: SocketAddr,
    identity: TlsIdentity,
    site: SiteHandle,
}

impl HttpsServer {
    /// Serves `handler` with `identity` on `bind` (port 0 picks a free port).
    pub async fn serve(handler: Handler, identity: TlsIdentity, bind: SocketAddr) -> anyhow::Result<HttpsServer> {
        let listener = Listener::bind(bind).await?;
        let site = listener.add(bind.ip(), &identity, handler)?;
        let addr = SocketAddr::new(bind.ip(), listener.port());
        Ok(HttpsServer { addr, identity, site })
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
        self.site.set_down(down);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_skip_network_and_broadcast_octets() {
        assert_eq!(loopback_address(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(loopback_address(253), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(loopback_address(254), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(loopback_address(9_999), Ipv4Addr::new(127, 0, 39, 94));
        assert_eq!(loopback_address(254 * 256), Ipv4Addr::new(127, 1, 0, 1));
    }
}
