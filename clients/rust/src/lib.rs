//! A client for the runcore sidecar, shared by the Python client's native core and
//! usable by Rust programs directly.
//!
//! Layout:
//! - [`Client`] and [`Run`] (`client.rs`, `run_link.rs`): the blocking API for
//!   Rust programs: open a run, log rows, flush, finish.
//! - [`Connection`] (`connection.rs`): one channel to a sidecar (unix socket or
//!   TCP, bearer token), blocking unary calls typed or pre-encoded, the health
//!   check; `address.rs` parses addresses, `codec.rs` passes encoded messages
//!   through, `runtime.rs` owns the process-wide tokio runtime (rebuilt after fork).
//! - [`Sender`] (`sender/`): a run's rows batched and streamed over LogStream,
//!   acks, resends after a break, heartbeats; it reaches its run through a [`Link`].
//! - [`contract`]: what a failed call means (the client contract's table).
//! - [`steps`]: W&B's step rules, mirrored to keep a run's step without asking.
//! - [`Status`]: every failure, a gRPC code and a message.
//! - [`proto`]: the runcore.v1 messages; [`FILE_DESCRIPTOR_SET`] the same contract
//!   as an encoded descriptor set, for code that maps messages by field name.

#![forbid(unsafe_code)]

mod address;
mod client;
mod codec;
mod connection;
pub mod contract;
mod health;
mod run_link;
mod runtime;
mod sender;
mod status;
pub mod steps;

pub use client::{Client, Run};
pub use connection::Connection;
pub use sender::{AttachError, Link, Row, Sender, SenderSettings, SenderStats};
pub use status::{Code, Status};

/// The runcore.v1 messages and the `RunService` client.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runcore.v1");
}

/// proto/runcore/v1/runcore.proto as an encoded `google.protobuf.FileDescriptorSet`.
pub static FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/runcore_descriptor.bin"));
