//! The two messages of grpc.health.v1's Check, written by hand: the sidecar serves
//! the standard health service, and this crate needs nothing else of it.

/// grpc.health.v1.HealthCheckRequest.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// grpc.health.v1.HealthCheckResponse.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckResponse {
    /// A ServingStatus value (see [`serving_status_name`]).
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub(crate) const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The name of grpc.health.v1.HealthCheckResponse.ServingStatus `value`.
pub(crate) fn serving_status_name(value: i32) -> &'static str {
    match value {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}
