//! Accepting connections: HTTP/1.1 (over TLS when configured) with handshake, header-read and
//! idle timeouts, an optional plain-HTTP listener for the legacy API alone, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::config::Timeouts;
use crate::state::AppState;
use crate::tls::TlsReloader;

/// How long in-flight requests may take to finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// What [`serve_on`] listens on.
#[derive(Debug)]
pub struct Listeners {
    /// The main listener: every API.
    pub main: TcpListener,
    /// HTTPS on the main listener with this certificate (else plain HTTP).
    pub tls: Option<TlsReloader>,
    /// A plain-HTTP listener serving the legacy (seed) API alone, for devices that cannot
    /// speak TLS; every other path is 404 there.
    pub legacy_http: Option<TcpListener>,
}

/// Serves `state` on `listener` (plain HTTP) until `shutdown` resolves: [`serve_on`] with that
/// one listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let listeners = Listeners {
        main: listener,
        tls: None,
        legacy_http: None,
    };
    serve_on(listeners, state, shutdown).await
}

/// Serves `state` on `listeners` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (up to 10 s), and writes the batched last-seen times.
pub async fn serve_on(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let housekeeping = tokio::spawn(crate::housekeeping::run(state.clone(), stop_rx));
    let timeouts = state.config().timeouts;
    let graceful = GracefulShutdown::new();
    let (accepting_tx, accepting_rx) = watch::channel(true);
    let main = accept_loop(
        listeners.main,
        crate::api::router(state.clone()),
        listeners.tls,
        timeouts,
        &graceful,
        accepting_rx.clone(),
    );
    let legacy = async {
        if let Some(listener) = listeners.legacy_http {
            let app = crate::api::legacy_router(state.clone());
            accept_loop(listener, app, None, timeouts, &graceful, accepting_rx).await;
        }
    };
    let stop = async {
        shutdown.await;
        let _ = accepting_tx.send(false);
    };
    tokio::join!(main, legacy, stop);
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
    let _ = stop_tx.send(true);
    let _ = housekeeping.await;
    Ok(())
}

/// Accepts on `listener` until `accepting` turns false, then drops it.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsReloader>,
    timeouts: Timeouts,
    graceful: &GracefulShutdown,
    mut accepting: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut accepting) => break,
        };
        let _ = stream.set_nodelay(true);
        let io = IdleTimeout::new(stream, timeouts.idle);
        let watcher = graceful.watcher();
        let app = app.clone();
        match &tls {
            None => {
                tokio::spawn(serve_connection(io, app, peer, timeouts, watcher));
            }
            Some(tls) => {
                // The pair current at accept time: a reload applies to the next handshake.
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    // The handshake gets the header-read budget: a client that opens a
                    // connection and says nothing is dropped as one that sends no headers.
                    match tokio::time::timeout(timeouts.header, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, app, peer, timeouts, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
}

/// Resolves once `accepting` turns false (or its sender is gone).
async fn stopped(accepting: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it inside this function.
    let _ = accepting.wait_for(|on| !*on).await.map(|_| ());
}

/// Runs HTTP/1.1 on one connection until it closes or the graceful shutdown ends it.
async fn serve_connection<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    timeouts: Timeouts,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Handlers that limit by client address (`api::auth::ClientIp`) find the peer here.
    let service = TowerToHyperService::new(app.map_request(
        move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req
        },
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A TCP stream that fails with `TimedOut` once neither reads nor writes made progress for
/// `idle`: this closes idle keep-alive connections and stalled transfers alike. A request the
/// server is still computing is not affected, since the connection is not polled for I/O then.
pub(crate) struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration) -> Self {
        Self {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progress(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.check(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.check(cx)?;
                Poll::Pending
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
