//! A client for the runcore sidecar.
//!
//! `proto` holds the wire contract of proto/runcore/v1 as Rust types and the
//! generated `RunService` client; `FILE_DESCRIPTOR_SET` is that contract as an
//! encoded `FileDescriptorSet`, for code that maps messages by field name (the
//! Python client's native core).

/// The runcore.v1 messages and the `RunService` client.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runcore.v1");
}

/// proto/runcore/v1/runcore.proto as an encoded `google.protobuf.FileDescriptorSet`.
pub static FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/runcore_descriptor.bin"));
