//! One owner of shutdown: a [`Shutdown`] signals every task holding a
//! [`ShutdownToken`] and then waits, up to a deadline, for all tokens to be dropped
//! (each task drops its token when it has finished its own clean-up).

use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub struct Shutdown {
    signal: watch::Sender<bool>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

/// Held by a task for as long as it runs: tells it when to stop, and its drop tells
/// the owner that it has stopped.
#[derive(Clone)]
pub struct ShutdownToken {
    signal: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        Shutdown {
            signal,
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    pub fn token(&self) -> ShutdownToken {
        ShutdownToken {
            signal: self.signal.subscribe(),
            // Tokens are only made before `stop`, which takes the sender.
            _done: self.done_tx.clone().expect("token after stop"),
        }
    }

    /// Signals every token; no new tokens can be made after this.
    pub fn signal(&mut self) {
        self.signal.send_replace(true);
        self.done_tx = None;
    }

    /// Waits until every token is dropped; false if `deadline` passed first.
    pub async fn wait(&mut self, deadline: Duration) -> bool {
        self.signal();
        tokio::time::timeout(deadline, self.done_rx.recv())
            .await
            .is_ok()
    }
}

impl ShutdownToken {
    pub fn is_stopping(&self) -> bool {
        *self.signal.borrow()
    }

    /// Resolves once shutdown is signalled.
    pub async fn stopping(&mut self) {
        // An error means the owner is gone, which is a shutdown too.
        let _ = self.signal.wait_for(|s| *s).await;
    }
}
