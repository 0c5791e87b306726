//! The accept loop: takes connections until the server stops, at most
//! `MAX_CONNECTIONS` at a time, and runs each in a task of its own set, so
//! a stop can wait for them and, past its bound, abort every one.
//!
//! Each connection is registered with the service's [`Pressure`] (which
//! reclaims idle connections as the count nears the cap, checked here once
//! a second too, and logged), so a flood of idle connections cannot fill every slot.
//!
//! The listening socket is bound with a backlog of [`LISTEN_BACKLOG`]: a
//! burst of connections faster than the task accepts waits in the kernel's
//! queue instead of having its SYNs dropped, which cost every connection
//! behind them, health probes too, a one-second retransmit or more.
//!
//! Accept errors never end the loop. A refused or reset handshake is the
//! client's business; running out of file descriptors or memory (EMFILE,
//! ENFILE, ENOBUFS, ENOMEM) is logged at warn, at most once a second, and
//! followed by a growing pause, so the loop does not spin at full CPU while
//! connections close and free descriptors (tonic's loop retried at once
//! and logged at trace).

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::pressure::{Pressure, SWEEP_INTERVAL, Tracked};
use crate::throttle::Throttle;

/// The kernel's queue of connections not yet accepted. Linux caps it at
/// `net.core.somaxconn` (4,096 by default since 5.4, Fargate included);
/// tokio's `TcpListener::bind` asks for 1,024, which a flood of
/// `MAX_CONNECTIONS` at 0.25 vCPU overflowed (faults: conn-pressure).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` for the accept loop: address reuse (a restart does not
/// wait for old connections' TIME_WAIT) and a [`LISTEN_BACKLOG`] queue.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// First pause after a resource error; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where the accept loop is told to stop, and how connections are set up.
pub(crate) struct AcceptSettings {
    pub(crate) service: String,
    pub(crate) max_connections: u32,
    pub(crate) tcp_keepalive: Duration,
    pub(crate) pressure: Arc<Pressure>,
    /// Cancelled when the server stops accepting.
    pub(crate) stop: CancellationToken,
}

/// Accepts until `settings.stop`, running `serve` for each connection (with
/// its place in the pressure registry).
/// Returns the set of connection tasks still running; the listening
/// socket is closed when it returns.
pub(crate) async fn accept_until_stopped<F, Fut>(
    listener: TcpListener,
    settings: AcceptSettings,
    serve: F,
) -> JoinSet<()>
where
    F: Fn(TcpStream, SocketAddr, Tracked) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(settings.max_connections as usize));
    let mut connections = JoinSet::new();
    let mut backoff = MIN_BACKOFF;
    let resource_warnings = Throttle::default();
    let cap_warnings = Throttle::default();
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            biased;
            () = settings.stop.cancelled() => break,
            _ = sweep.tick() => {
                settings.pressure.sweep();
                continue;
            }
            Some(ended) = connections.join_next() => {
                if let Err(error) = ended
                    && error.is_panic()
                {
                    tracing::error!(service = settings.service, %error, "a connection task panicked");
                }
                continue;
            }
            accepted = accept(&listener, &slots, &settings, &cap_warnings) => accepted,
        };
        match accepted {
            Ok((stream, client, slot)) => {
                backoff = MIN_BACKOFF;
                configure(&stream, settings.tcp_keepalive);
                let connection = serve(stream, client, settings.pressure.admit());
                connections.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(error) if is_client_error(&error) => {
                tracing::debug!(%error, "accept: the client gave up during the handshake");
            }
            Err(error) => {
                if let Some(errors) = resource_warnings.event() {
                    tracing::warn!(
                        service = settings.service,
                        %error,
                        errors,
                        open_connections = connections.len(),
                        pause_ms = backoff.as_millis() as u64,
                        "cannot accept connections (out of file descriptors or memory?): pausing"
                    );
                }
                tokio::select! {
                    () = settings.stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    connections
}

/// Waits for a free connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    settings: &AcceptSettings,
    cap_warnings: &Throttle,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = match Arc::clone(slots).try_acquire_owned() {
        Ok(slot) => slot,
        Err(_) => {
            if let Some(times) = cap_warnings.event() {
                tracing::warn!(
                    service = settings.service,
                    max_connections = settings.max_connections,
                    times,
                    "MAX_CONNECTIONS reached: not accepting until a connection closes"
                );
            }
            Arc::clone(slots)
                .acquire_owned()
                .await
                .map_err(|_| io::Error::other("connection slots closed"))?
        }
    };
    let (stream, client) = listener.accept().await?;
    Ok((stream, client, slot))
}

/// Errors of one handshake, not of the listener.
fn is_client_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn configure(stream: &TcpStream, keepalive: Duration) {
    // Small answers go out at once rather than waiting for more to send.
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(keepalive);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "cannot set TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncReadExt, sync::mpsc};

    use super::*;

    /// A burst past tokio's default backlog (1,024) that nobody accepts yet
    /// still connects at once: its SYNs wait in the queue, none is dropped
    /// (a dropped SYN is retried after a second).
    #[tokio::test]
    async fn a_burst_past_the_default_backlog_waits_in_the_queue() {
        const BURST: usize = 1100;
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("somaxconn")
            .trim()
            .parse()
            .expect("a number");
        assert!(
            somaxconn > BURST,
            "net.core.somaxconn {somaxconn} caps every backlog: raise it to run this test"
        );
        crate::fd_limit::raise_to_hard_limit().expect("open-file limit");
        let listener = bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let address = listener.local_addr().expect("address");
        let mut connects = JoinSet::new();
        for _ in 0..BURST {
            connects.spawn(tokio::time::timeout(
                Duration::from_millis(700),
                TcpStream::connect(address),
            ));
        }
        let mut connected = Vec::with_capacity(BURST);
        while let Some(done) = connects.join_next().await {
            if let Ok(Ok(stream)) = done.expect("task") {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), BURST, "connections whose SYN waited");
        drop(listener);
    }

    #[tokio::test]
    async fn at_the_cap_new_connections_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        let (accepted, mut accepted_rx) = mpsc::unbounded_channel();
        let settings = AcceptSettings {
            service: "test".into(),
            max_connections: 2,
            tcp_keepalive: Duration::from_secs(60),
            pressure: Pressure::new(
                "test",
                2,
                Duration::from_secs(600),
                Arc::new(crate::emf::Recorder::new("test", [])),
            ),
            stop: stop.clone(),
        };
        // Each connection is served until its client closes it.
        let loop_task = tokio::spawn(accept_until_stopped(
            listener,
            settings,
            move |mut stream: TcpStream, _, _| {
                let accepted = accepted.clone();
                async move {
                    let _ = accepted.send(());
                    let mut buffer = [0u8; 1];
                    let _ = stream.read(&mut buffer).await;
                }
            },
        ));
        let first = TcpStream::connect(address).await.expect("connect");
        let _second = TcpStream::connect(address).await.expect("connect");
        let _third = TcpStream::connect(address)
            .await
            .expect("connect (backlog)");
        for _ in 0..2 {
            accepted_rx.recv().await.expect("accepted");
        }
        let waited = tokio::time::timeout(Duration::from_millis(300), accepted_rx.recv()).await;
        assert!(
            waited.is_err(),
            "a third connection was served past the cap"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), accepted_rx.recv())
            .await
            .expect("the third is served once a slot frees")
            .expect("accepted");

        stop.cancel();
        let mut connections = tokio::time::timeout(Duration::from_secs(5), loop_task)
            .await
            .expect("stops at once")
            .expect("task");
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening"
        );
        connections.shutdown().await;
    }
}
