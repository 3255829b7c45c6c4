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
    /// A status the sidecar sent keeps its code. One tonic made up from a
    /// transport failure (the connection broke during the call: UNKNOWN,
    /// "transport error", with the failure as its source) is UNAVAILABLE, as
    /// grpcio reports it: the sidecar is gone for now, reconnect and try again.
    fn from(status: tonic::Status) -> Self {
        let local = std::error::Error::source(&status).is_some();
        let code = match status.code() {
            Code::Unknown if local => Code::Unavailable,
            code => code,
        };
        Status::new(code, status.message())
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
    fn a_broken_connection_is_unavailable_and_a_sent_unknown_stays_unknown() {
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("broken pipe")));
        assert_eq!(broken.code(), Code::Unknown, "what tonic makes of it");
        assert_eq!(Status::from(broken).code, Code::Unavailable);
        let sent = tonic::Status::new(Code::Unknown, "the sidecar said so");
        assert_eq!(Status::from(sent).code, Code::Unknown);
    }

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
