//! [`Status`]: how every failed call of this crate is reported.

pub use tonic::Code;

/// A failed call: its gRPC code and a message a user can act on. Displays as
/// `UNAVAILABLE: message`, the code by its gRPC name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code_name(*.code))]
pub struct Status {
    /// What the client contract ([`crate::contract::classify`]) acts on.
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The code's name as gRPC spells it: "UNAVAILABLE", "NOT_FOUND", ...
    pub fn code_name(&self) -> &'static str {
        code_name(self.code)
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Status::new(Code::InvalidArgument, message)
    }
}

impl From<tonic::Status> for Status {
    fn from(status: tonic::Status) -> Self {
        Status::new(status.code(), status.message())
    }
}

/// The gRPC name of `code` (google.rpc.Code), the spelling the contract's table and
/// the other clients use.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_grpc_name_then_the_message() {
        let status = Status::new(Code::Unavailable, "the sidecar is restarting");
        assert_eq!(status.to_string(), "UNAVAILABLE: the sidecar is restarting");
        assert_eq!(
            Status::new(Code::FailedPrecondition, "").code_name(),
            "FAILED_PRECONDITION"
        );
    }
}
