//! Turns SIGTERM (ECS stopping a task) and SIGINT (Ctrl-C) into a
//! cancellation that every service of the process drains on.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::logging::Flusher;

/// Exit status after a second signal: 128 + SIGINT, what shells expect.
const EXIT_SECOND_SIGNAL: i32 = 130;

/// Cancels `token` on the first SIGTERM or SIGINT. A second signal, for
/// the impatient at a terminal, writes the buffered log lines and exits at
/// once.
pub fn cancel_on_signal(token: CancellationToken, logs: Flusher) -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let received = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = received, "shutting down");
        token.cancel();
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        logs.flush_and_stop();
        std::process::exit(EXIT_SECOND_SIGNAL);
    });
    Ok(())
}
