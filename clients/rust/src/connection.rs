//! [`Connection`]: one channel to a sidecar and the blocking unary calls made on it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::address::{self, Target};
use crate::codec::RawCodec;
use crate::health;
use crate::runtime::runtime;
use crate::status::{Code, Status};

const SERVICE_PATH: &str = "/runcore.v1.RunService/";

/// One connection to a sidecar; cheap to clone (clones share the channel).
///
/// Connects lazily, on the first call, and reconnects by itself when the sidecar
/// comes back at the same address: a call made while it is away fails with
/// UNAVAILABLE, and a later one goes through.
///
/// Calls block the calling thread: make them from ordinary threads, never from
/// async code running on a tokio runtime.
///
/// After `fork()`, a child must not use a `Connection` made in the parent (its
/// channel lives on the parent's runtime threads, which the child does not have):
/// make a new one in the child.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    /// As the caller wrote it, for messages and for reconnecting elsewhere.
    address: String,
    channel: Channel,
    /// `Bearer <token>`, sent with every call when the sidecar has --auth-token.
    authorization: Option<MetadataValue<Ascii>>,
}

impl Connection {
    /// A connection to the sidecar at `address` ("unix:///abs/path", "unix:path",
    /// "tcp://host:port" or "host:port"), sending `token` (RUNCORE_AUTH_TOKEN's
    /// value) as `authorization: Bearer <token>` with every call. Nothing is
    /// connected yet; INVALID_ARGUMENT for a malformed address or token.
    pub fn new(address: &str, token: Option<String>) -> Result<Connection, Status> {
        let target = address::parse(address)?;
        let authorization = token.map(|token| bearer(&token)).transpose()?;
        let channel = {
            // The channel's worker task is spawned on the crate's runtime.
            let _entered = runtime().enter();
            open_lazily(&target, address)?
        };
        Ok(Connection {
            inner: Arc::new(Inner {
                address: address.to_owned(),
                channel,
                authorization,
            }),
        })
    }

    /// The address this connection was made for, as given to [`Connection::new`].
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Calls RunService/`method` ("Init", "GetRun", ...) with an encoded request and
    /// returns the encoded response; DEADLINE_EXCEEDED when no reply came within
    /// `timeout`.
    pub fn call_raw(
        &self,
        method: &str,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Status> {
        let reply = self.unary(method_path(method)?, Bytes::from(request), timeout)?;
        Ok(Vec::from(reply))
    }

    /// Calls RunService/`method` with a typed request and decodes the reply.
    pub fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Status> {
        let reply = self.unary(
            method_path(method)?,
            request.encode_to_vec().into(),
            timeout,
        )?;
        decode(method, reply)
    }

    /// The grpc.health.v1 Check of `service` ("runcore.v1.RunService"): "SERVING",
    /// "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN". The sidecar answers it without
    /// the auth token.
    pub fn health(&self, service: &str, timeout: Duration) -> Result<String, Status> {
        let request = health::HealthCheckRequest {
            service: service.to_owned(),
        };
        let path = PathAndQuery::from_static(health::CHECK_PATH);
        let reply = self.unary(
            path,
            prost::Message::encode_to_vec(&request).into(),
            timeout,
        )?;
        let reply: health::HealthCheckResponse = decode("Health/Check", reply)?;
        Ok(health::serving_status_name(reply.status).to_owned())
    }

    /// A gRPC client on this connection's channel, without message size limits (as
    /// the Python client: the sidecar enforces its own --max-message-bytes).
    pub(crate) fn grpc(&self) -> Grpc<Channel> {
        Grpc::new(self.inner.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// `message` as a request carrying this connection's credentials.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.inner.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// `status` with the sidecar's address added where it helps the reader: the
    /// transport's own messages do not say which sidecar could not be reached.
    pub(crate) fn describe(&self, status: tonic::Status) -> Status {
        let status = Status::from(status);
        match status.code {
            Code::Unavailable => Status::new(
                status.code,
                format!("{} (sidecar at {})", status.message, self.address()),
            ),
            _ => status,
        }
    }

    fn unary(
        &self,
        path: PathAndQuery,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Status> {
        let request = self.request(request);
        let mut grpc = self.grpc();
        let call = async move {
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("the connection is closed: {e}"))
            })?;
            grpc.unary(request, path, RawCodec).await
        };
        let outcome = runtime().block_on(async { tokio::time::timeout(timeout, call).await });
        match outcome {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(self.describe(status)),
            Err(_) => Err(Status::new(
                Code::DeadlineExceeded,
                format!(
                    "the sidecar at {} did not answer within {timeout:?}",
                    self.address()
                ),
            )),
        }
    }
}

fn open_lazily(target: &Target, address: &str) -> Result<Channel, Status> {
    match target {
        Target::Tcp(host_port) => Endpoint::from_shared(format!("http://{host_port}"))
            .map(|endpoint| endpoint.connect_lazy())
            .map_err(|e| {
                Status::invalid_argument(format!("malformed sidecar address {address:?}: {e}"))
            }),
        Target::Unix(path) => {
            let path = path.clone();
            // The URI is required by the transport but unused: the connector below
            // opens the socket.
            let endpoint = Endpoint::from_static("http://localhost");
            Ok(
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                })),
            )
        }
    }
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, Status> {
    format!("Bearer {token}").parse().map_err(|_| {
        Status::invalid_argument(
            "the auth token cannot be sent as a gRPC header: use printable ASCII characters only",
        )
    })
}

fn method_path(method: &str) -> Result<PathAndQuery, Status> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Status::invalid_argument(format!(
            "{method:?} is not a RunService method name (e.g. \"Init\", \"GetRun\")"
        )));
    }
    PathAndQuery::try_from(format!("{SERVICE_PATH}{method}"))
        .map_err(|e| Status::invalid_argument(format!("bad method name {method:?}: {e}")))
}

fn decode<M: prost::Message + Default>(method: &str, reply: Bytes) -> Result<M, Status> {
    M::decode(reply).map_err(|e| {
        Status::new(
            Code::Internal,
            format!("the sidecar's reply to {method} could not be decoded: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_address_or_token_is_invalid_argument() {
        let bad_address = Connection::new("unix://relative", None)
            .err()
            .expect("refused");
        assert_eq!(bad_address.code, Code::InvalidArgument);
        let bad_token = Connection::new("127.0.0.1:1", Some("line\nbreak".into()))
            .err()
            .expect("refused");
        assert_eq!(bad_token.code, Code::InvalidArgument);
    }

    #[test]
    fn a_bad_method_name_is_refused_before_any_call() {
        let connection = Connection::new("127.0.0.1:1", None).expect("lazy connection");
        let err = connection
            .call_raw("Get/Run", Vec::new(), Duration::from_secs(1))
            .expect_err("refused");
        assert_eq!(err.code, Code::InvalidArgument);
    }

    #[test]
    fn a_call_to_an_absent_sidecar_is_unavailable_and_names_it() {
        let dir =
            std::env::temp_dir().join(format!("runcore-client-absent-{}", std::process::id()));
        let address = format!("unix://{}/none.sock", dir.display());
        let connection = Connection::new(&address, None).expect("lazy connection");
        let err = connection
            .health("runcore.v1.RunService", Duration::from_secs(10))
            .expect_err("nobody listens");
        assert_eq!(err.code, Code::Unavailable, "{err}");
        assert!(err.message.contains(&address), "{err}");
    }
}
