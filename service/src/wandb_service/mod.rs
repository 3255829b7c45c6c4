//! The W&B service protocol: the unchanged `wandb` Python SDK logging into
//! runcore. With `WANDB_SERVICE` set, the SDK connects to an already running core
//! instead of starting wandb-core; `runcore serve --wandb-listen ADDR` is that core.
//!
//! This is an adapter, not a second implementation: each record becomes the
//! operation runcore's own RPCs perform, through the registry ([`crate::runs`]) and
//! the same run actor, log and store.
//!
//! - [`listener`]: accepts connections; one task per connection routes the
//!   frames its socket's reader hands it.
//! - [`socket`]: each connection's socket read and written by two threads of
//!   its own (a burst of frames is read in one wake-up, its rows taken by the
//!   reader).
//! - [`rows`]: history rows on their way to the runs' actors, gathered by the
//!   reader or the router and sent as one batch per run when due.
//! - [`framing`]: `W` + u32 LE length + protobuf, both ways.
//! - [`router`]: routes records to runs by stream id and answers every request
//!   the SDK waits on; [`requests`] the questions (summary, step, exit polling).
//! - [`map`]: W&B records to runcore requests and back (pure).
//! - [`history`]: `partial_history` rows packed into LogBatches; [`row_frame`]
//!   reads the common row (top-level keys, plain numbers) in place from its frame.
//! - [`console`]: console fragments to output.log lines.
//! - [`stream`]: one run of a connection, its actor calls (each with a deadline)
//!   and the crash of a run whose connection closed without an exit record.
//!
//! The messages are runcore's own subset of the protocol:
//! `proto/runcore/wandb/v1/service.proto`.

pub mod console;
pub mod framing;
pub mod history;
pub mod listener;
pub mod map;
mod requests;
pub mod router;
pub mod row_frame;
pub mod rows;
pub mod socket;
pub mod stream;

pub use listener::serve;

use crate::config::ListenAddr;

/// The environment variable the SDK reads (and `runcore exec` sets).
pub const ENV_SERVICE: &str = "WANDB_SERVICE";

/// The value of `WANDB_SERVICE` that points the SDK at a listener: protocol
/// version 3, a pid (informational), then the transport.
pub fn service_token(addr: &ListenAddr, pid: u32) -> String {
    match addr {
        ListenAddr::Unix(path) => format!("3-{pid}-unix-{}", path.display()),
        ListenAddr::Tcp(a) => format!("3-{pid}-tcp-localhost-{}", a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_what_the_sdk_parses() {
        let unix = ListenAddr::Unix("/tmp/r/wandb.sock".into());
        assert_eq!(service_token(&unix, 42), "3-42-unix-/tmp/r/wandb.sock");
        let tcp: ListenAddr = "tcp://127.0.0.1:5000".parse().unwrap();
        assert_eq!(service_token(&tcp, 7), "3-7-tcp-localhost-5000");
    }
}
