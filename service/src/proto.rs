//! Code generated from `proto/` at build time (see build.rs).

#![allow(clippy::all, missing_docs)]

/// Generated modules, nested as the proto packages are (cross-package references
/// in the generated code rely on it).
pub mod runcore {
    /// `runcore.v1`: the API.
    pub mod v1 {
        tonic::include_proto!("runcore.v1");
    }

    /// `runcore.wandb.v1`: runcore's subset of the W&B service protocol (the
    /// unchanged `wandb` SDK's socket to its core).
    pub mod wandb {
        pub mod v1 {
            tonic::include_proto!("runcore.wandb.v1");
        }
    }

    /// `runcore.wal.v1`: the transaction log's record format.
    pub mod wal {
        pub mod v1 {
            tonic::include_proto!("runcore.wal.v1");
        }
    }
}

pub use self::runcore::v1;
pub use self::runcore::wal::v1 as wal;
pub use self::runcore::wandb::v1 as wandb;

/// Descriptors of every runcore proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("runcore_descriptor");
