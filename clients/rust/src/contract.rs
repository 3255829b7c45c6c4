//! The client contract: what a client does when a call to the sidecar ends with a
//! gRPC status. The table is the one above `service RunService` in
//! proto/runcore/v1/runcore.proto and, as data, tests/vectors/status_contract.json,
//! which the tests check [`classify`] against. Every place in this crate that
//! handles a failed call asks [`classify`].

use tonic::Code;

/// Which kind of call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The Init that starts or resumes a run.
    Init,
    /// Any other unary call about an open run.
    Unary,
    /// The end of a LogStream call.
    Stream,
    /// A call of the public read API, about any run this client does not log to.
    Api,
}

/// What the client does (the contract's words for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Reconnect, make sure the run is open, call again or resend; back off; give
    /// up after the reconnect timeout without progress.
    Retry,
    /// As `Retry`, but stop after [`RETRY_LIMITED_ATTEMPTS`] failures in a row.
    RetryLimited,
    /// The sidecar does not know the run: Init it again (resume ALLOW), retry.
    Reinit,
    /// The run may have ended: read its state; if it ended, report it and stop
    /// sending, never resume it automatically.
    Ended,
    /// Stream: drop the oldest unacknowledged batch (its rows lost), resend the rest.
    DropBatch,
    /// Return the error to the caller; the run stays usable.
    Fail,
    /// Return the error; on a stream the sender gives up for good.
    Stop,
}

/// Failed attempts in a row (the first included, no acknowledgement between them)
/// after which `RetryLimited` stops.
pub const RETRY_LIMITED_ATTEMPTS: u32 = 3;

/// The action for a call of `kind` that ended with `code`.
pub fn classify(code: Code, kind: Kind) -> Action {
    let [init, unary, stream, api] = row(code);
    match kind {
        Kind::Init => init,
        Kind::Unary => unary,
        Kind::Stream => stream,
        Kind::Api => api,
    }
}

/// One row of the table: the actions for (init, unary, stream, api).
fn row(code: Code) -> [Action; 4] {
    use Action::*;
    match code {
        Code::Ok => [None, None, None, None],
        Code::Cancelled => [Retry, Retry, Retry, Retry],
        Code::Unknown => [Fail, Fail, RetryLimited, Fail],
        Code::InvalidArgument => [Fail, Fail, DropBatch, Fail],
        Code::DeadlineExceeded => [Fail, Fail, Retry, Fail],
        Code::NotFound => [Fail, Reinit, Reinit, Fail],
        Code::AlreadyExists => [Fail, Fail, Stop, Fail],
        Code::PermissionDenied => [Fail, Stop, Stop, Stop],
        Code::ResourceExhausted => [Fail, Fail, DropBatch, Fail],
        Code::FailedPrecondition => [Fail, Ended, Ended, Fail],
        Code::Aborted => [Fail, Fail, Retry, Fail],
        Code::OutOfRange => [Fail, Fail, DropBatch, Fail],
        Code::Unimplemented => [Fail, Stop, Stop, Stop],
        Code::Internal => [Fail, Fail, RetryLimited, Fail],
        Code::Unavailable => [Retry, Retry, Retry, Retry],
        Code::DataLoss => [Fail, Stop, Stop, Stop],
        Code::Unauthenticated => [Fail, Stop, Stop, Stop],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::code_name;

    const ALL_CODES: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    fn action_name(action: Action) -> &'static str {
        match action {
            Action::None => "none",
            Action::Retry => "retry",
            Action::RetryLimited => "retry_limited",
            Action::Reinit => "reinit",
            Action::Ended => "ended",
            Action::DropBatch => "drop_batch",
            Action::Fail => "fail",
            Action::Stop => "stop",
        }
    }

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/status_contract.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/vectors/status_contract.json");
        serde_json::from_str(&text).expect("status_contract.json is JSON")
    }

    #[test]
    fn classify_follows_every_row_of_status_contract_json() {
        let file = vectors();
        assert_eq!(file["format"], "runcore.vectors.status_contract/1");
        let rows = file["codes"].as_array().expect("codes");
        assert_eq!(rows.len(), ALL_CODES.len(), "one row per gRPC code");
        for row in rows {
            let name = row["code"].as_str().expect("code");
            let code = Code::from_i32(row["number"].as_i64().expect("number") as i32);
            assert_eq!(code_name(code), name, "number and name of {name} agree");
            for (kind, key) in [
                (Kind::Init, "init"),
                (Kind::Unary, "unary"),
                (Kind::Stream, "stream"),
                (Kind::Api, "api"),
            ] {
                assert_eq!(
                    action_name(classify(code, kind)),
                    row[key].as_str().expect("action"),
                    "{name} / {key}"
                );
            }
        }
    }

    #[test]
    fn the_retry_limit_is_the_contracts() {
        let limit = &vectors()["limits"]["retry_limited_attempts"];
        assert_eq!(limit.as_u64(), Some(u64::from(RETRY_LIMITED_ATTEMPTS)));
    }
}
