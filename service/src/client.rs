//! Connecting to a sidecar, for the `runcore` CLI, the examples and the tests.

use tonic::transport::{Channel, Endpoint};

use crate::config::ListenAddr;

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the sidecar at {addr}: {source}")]
pub struct ConnectError {
    addr: String,
    source: tonic::transport::Error,
}

/// A channel to a sidecar at a `tcp://` or `unix://` address.
pub async fn connect(addr: &ListenAddr) -> Result<Channel, ConnectError> {
    let err = |source| ConnectError {
        addr: addr.to_string(),
        source,
    };
    match addr {
        ListenAddr::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(err)
        }
        ListenAddr::Tcp(a) => Endpoint::from_shared(format!("http://{a}"))
            .map_err(err)?
            .connect()
            .await
            .map_err(err),
    }
}
