//! One LogStream call: batches go in through a channel, and a thread of its own
//! (outside the runtime, so that the sender's [`Link`](super::Link) callbacks may
//! block) reads the acks in order and hands them to the sender.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Notify;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;

use crate::codec::RawCodec;
use crate::connection::Connection;
use crate::proto;
use crate::runtime::runtime;
use crate::status::{Code, Status};

const LOG_STREAM_PATH: &str = "/runcore.v1.RunService/LogStream";

/// Where a stream's acks and end go.
pub(super) trait AckSink: Send + Sync + 'static {
    fn on_ack(&self, ack: proto::LogAck);
    /// The stream `generation` ended: `None` when the sidecar ended it OK.
    fn on_stream_end(&self, generation: u64, error: Option<Status>);
}

/// The sender's end of one LogStream call.
pub(super) struct Stream {
    pub generation: u64,
    /// Dropped to half-close the call (the sidecar acks what it has and ends it).
    requests: Option<UnboundedSender<Bytes>>,
    cancelled: Arc<Notify>,
    /// A batch was sent on this call: only then does closing wait for the sidecar
    /// to end it (one that carried nothing has nothing to ack and is cancelled).
    carried: bool,
}

impl Stream {
    /// Starts the call on `connection`; its acks and its end go to `sink`.
    pub fn open(
        connection: &Connection,
        generation: u64,
        sink: Arc<dyn AckSink>,
    ) -> Result<Stream, Status> {
        let (requests, queued) = mpsc::unbounded_channel();
        let cancelled = Arc::new(Notify::new());
        let call = Call {
            connection: connection.clone(),
            batches: UnboundedReceiverStream::new(queued),
            cancelled: Arc::clone(&cancelled),
            generation,
            sink,
        };
        std::thread::Builder::new()
            .name("runcore-acks".into())
            .spawn(move || call.read_acks())
            .map_err(|e| {
                Status::new(
                    Code::Unknown,
                    format!("cannot start a thread to read acks: {e}"),
                )
            })?;
        Ok(Stream {
            generation,
            requests: Some(requests),
            cancelled,
            carried: false,
        })
    }

    /// Queues an encoded `LogBatch` (a stream already ended ignores it: the batch
    /// stays unacked and is resent on the next stream).
    pub fn send(&mut self, batch: Bytes) {
        if let Some(requests) = &self.requests {
            self.carried = true;
            let _ = requests.send(batch);
        }
    }

    /// Whether a batch was sent on this call.
    pub fn carried(&self) -> bool {
        self.carried
    }

    /// Sends nothing more: the sidecar acks what it has and ends the call.
    pub fn half_close(&mut self) {
        self.requests = None;
    }

    /// Abandons the call; its thread reports nothing more.
    pub fn cancel(&mut self) {
        self.requests = None;
        self.cancelled.notify_one();
    }
}

struct Call {
    connection: Connection,
    batches: UnboundedReceiverStream<Bytes>,
    cancelled: Arc<Notify>,
    generation: u64,
    sink: Arc<dyn AckSink>,
}

impl Call {
    fn read_acks(self) {
        let Call {
            connection,
            batches,
            cancelled,
            generation,
            sink,
        } = self;
        let runtime = runtime();
        let mut grpc = connection.grpc();
        let request = connection.request(batches);
        let opening = async {
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("the connection is closed: {e}"))
            })?;
            grpc.streaming(
                request,
                PathAndQuery::from_static(LOG_STREAM_PATH),
                RawCodec,
            )
            .await
        };
        let opened = runtime.block_on(async {
            tokio::select! {
                opened = opening => Some(opened),
                _ = cancelled.notified() => None,
            }
        });
        let mut acks = match opened {
            None => return,
            Some(Err(status)) => {
                return sink.on_stream_end(generation, Some(connection.describe(status)))
            }
            Some(Ok(response)) => response.into_inner(),
        };
        loop {
            let next = runtime.block_on(async {
                tokio::select! {
                    next = acks.message() => Some(next),
                    _ = cancelled.notified() => None,
                }
            });
            // Each ack is handed over outside the runtime: the sink calls the Link.
            match next {
                None => return,
                Some(Ok(Some(encoded))) => match proto::LogAck::decode(encoded) {
                    Ok(ack) => sink.on_ack(ack),
                    Err(e) => {
                        let why = format!("the sidecar sent an ack this client cannot decode: {e}");
                        return sink
                            .on_stream_end(generation, Some(Status::new(Code::Internal, why)));
                    }
                },
                Some(Ok(None)) => return sink.on_stream_end(generation, None),
                Some(Err(status)) => {
                    return sink.on_stream_end(generation, Some(connection.describe(status)))
                }
            }
        }
    }
}
