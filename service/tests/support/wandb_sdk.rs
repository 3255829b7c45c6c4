//! A stand-in for the `wandb` SDK at the socket (the W&B service protocol), for
//! the tests of runcore's W&B listener: frames, records, replies with deadlines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use runcore::proto::wandb as wb;
use runcore::wandb_service::framing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use wb::record::Kind as Rec;
use wb::request::Kind as Ask;
use wb::server_request::Kind as Req;
use wb::server_response::Kind as Resp;

use super::{wait_for, Sidecar, Transport};

/// Longest wait for one reply: an unanswered request fails the test, never hangs it.
pub const REPLY: Duration = Duration::from_secs(10);

pub struct Sdk {
    pub sock: UnixStream,
}

impl Sdk {
    pub async fn connect(path: &Path) -> Sdk {
        Sdk {
            sock: UnixStream::connect(path).await.expect("connect"),
        }
    }

    pub async fn send_raw(&mut self, payload: &[u8]) {
        let mut frame = Vec::new();
        framing::encode(payload, &mut frame);
        self.sock.write_all(&frame).await.expect("write");
    }

    pub async fn send(&mut self, req: wb::ServerRequest) {
        self.send_raw(&req.encode_to_vec()).await;
    }

    /// Sends a record of stream `run` (with a mailbox slot when `id` is not empty).
    pub async fn record(&mut self, id: &str, run: &str, kind: Rec) {
        self.send(request(id, record(id, run, kind))).await;
    }

    pub async fn reply(&mut self) -> wb::ServerResponse {
        let read = async {
            let mut header = [0u8; framing::HEADER_LEN];
            self.sock
                .read_exact(&mut header)
                .await
                .expect("reply header");
            assert_eq!(header[0], framing::MAGIC);
            let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; len];
            self.sock.read_exact(&mut body).await.expect("reply body");
            wb::ServerResponse::decode(&body[..]).expect("decode reply")
        };
        tokio::time::timeout(REPLY, read)
            .await
            .expect("no reply within the deadline")
    }

    /// The reply to request `id`, which must be a record's result.
    pub async fn result(&mut self, id: &str) -> wb::Result {
        let reply = self.reply().await;
        assert_eq!(reply.request_id, id);
        match reply.kind {
            Some(Resp::ResultCommunicate(r)) => {
                assert_eq!(
                    r.control.as_ref().map(|c| c.mailbox_slot.as_str()),
                    Some(id)
                );
                r
            }
            other => panic!("expected a result for {id}, got {other:?}"),
        }
    }

    pub async fn answer(&mut self, id: &str) -> Option<wb::response::Kind> {
        match self.result(id).await.kind {
            Some(wb::result::Kind::Response(r)) => r.kind,
            other => panic!("expected a response for {id}, got {other:?}"),
        }
    }

    /// inform_init and the run record of run `run`: a started run.
    pub async fn start(&mut self, run: &str, files: &Path) {
        let settings = wb::Settings {
            run_id: Some(wb::StringValue { value: run.into() }),
            sync_dir: Some(wb::StringValue {
                value: files.parent().unwrap().display().to_string(),
            }),
            ..Default::default()
        };
        self.send(wb::ServerRequest {
            request_id: format!("init-{run}"),
            kind: Some(Req::InformInit(wb::InformInit {
                settings: Some(settings),
                info: Some(info(run)),
            })),
        })
        .await;
        assert!(matches!(
            self.reply().await.kind,
            Some(Resp::InformInitResponse(_))
        ));
        let run_record = wb::Run {
            run_id: run.into(),
            project: "wb".into(),
            config: Some(wb::ItemUpdate {
                update: vec![item("lr", "0.01"), item("_wandb", "{}")],
                remove: vec![],
            }),
            ..Default::default()
        };
        self.record("run", run, Rec::Run(run_record)).await;
        match self.result("run").await.kind {
            Some(wb::result::Kind::RunResult(r)) => {
                assert!(r.error.is_none(), "{:?}", r.error);
                let got = r.run.unwrap();
                assert_eq!((got.run_id.as_str(), got.project.as_str()), (run, "wb"));
                assert!(!got.display_name.is_empty(), "runcore names the run");
            }
            other => panic!("expected a run result, got {other:?}"),
        }
    }
}

pub fn info(run: &str) -> wb::StreamInfo {
    wb::StreamInfo {
        stream_id: run.into(),
    }
}

pub fn record(slot: &str, run: &str, kind: Rec) -> wb::Record {
    wb::Record {
        kind: Some(kind),
        control: Some(wb::Control {
            mailbox_slot: slot.into(),
        }),
        info: Some(info(run)),
        ..Default::default()
    }
}

pub fn request(id: &str, rec: wb::Record) -> wb::ServerRequest {
    wb::ServerRequest {
        request_id: id.into(),
        kind: Some(Req::RecordPublish(rec)),
    }
}

pub fn ask(kind: Ask) -> Rec {
    Rec::Request(wb::Request { kind: Some(kind) })
}

pub fn item(key: &str, json: &str) -> wb::Item {
    wb::Item {
        key: key.into(),
        value_json: json.into(),
        ..Default::default()
    }
}

pub fn log(items: Vec<wb::Item>, step: Option<i64>) -> Rec {
    ask(Ask::PartialHistory(wb::PartialHistory {
        item: items,
        step: step.map(|num| wb::HistoryStep { num }),
        action: step.is_none().then_some(wb::HistoryAction { flush: true }),
    }))
}

/// `bytes` (an encoded message) with an empty field `field` appended: a kind of
/// message this version of the protocol does not declare.
pub fn with_unknown_field(mut bytes: Vec<u8>, field: u32) -> Vec<u8> {
    prost::encoding::encode_key(
        field,
        prost::encoding::WireType::LengthDelimited,
        &mut bytes,
    );
    prost::encoding::encode_varint(0, &mut bytes);
    bytes
}

/// A sidecar with a W&B listener on a unix socket in `root`.
pub fn sidecar(root: &Path, extra: &[&str]) -> (Sidecar, PathBuf) {
    sidecar_env(root, extra, &[])
}

/// [`sidecar`] with environment variables for the sidecar alone (credentials).
pub fn sidecar_env(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Sidecar, PathBuf) {
    let sock = root.join("wandb.sock");
    let listen = format!("unix://{}", sock.display());
    let mut args = vec!["--wandb-listen", listen.as_str()];
    args.extend_from_slice(extra);
    let s = Sidecar::start_in_env(root, Transport::Tcp, &args, env);
    wait_for(|| sock.exists().then_some(()));
    (s, sock)
}
