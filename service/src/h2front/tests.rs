//! The wrapper end to end over an in-memory pipe, read in pieces of every size.

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use super::frame::{FrameHeader, CONTINUATION, END_HEADERS, END_STREAM, HEADERS, HEADER_LEN};
use super::frame::{PADDED, PRIORITY};
use super::rewrite::PREFACE;
use super::testing::{frame, hex, plain, server_view, string, Seen};
use super::*;

const SOCKET: &str = "/tmp/a b.sock";
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;

/// Writes `input` into a pipe holding at most `pipe` bytes, reads it back through
/// an [`H2Front`] with a buffer of `read` bytes until the end.
async fn through_front(input: &[u8], pipe: usize, read: usize) -> io::Result<Vec<u8>> {
    let (mut client, server) = duplex(pipe);
    let mut front = H2Front::new(server);
    let write = async {
        client.write_all(input).await?;
        client.shutdown().await
    };
    // Owning the front, the reader drops it when it stops, so a writer stuck on
    // a full pipe gets an error instead of waiting forever.
    let read = async move {
        let mut out = Vec::new();
        let mut buf = vec![0; read];
        loop {
            match front.read(&mut buf).await? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (written, read) = tokio::join!(write, read);
    if read.is_ok() {
        written.expect("the client's bytes all went in");
    }
    read
}

/// The same output whichever way the bytes are cut: one byte per pipe write or
/// per read, or all at once.
async fn through_front_every_way(input: &[u8]) -> io::Result<Vec<u8>> {
    let whole = through_front(input, 1 << 20, 1 << 20).await?;
    for (pipe, read) in [(1, 1), (1, 1 << 16), (1 << 20, 1), (7, 5)] {
        let cut = through_front(input, pipe, read).await?;
        assert!(
            cut == whole,
            "pipe {pipe}, reads of {read}: different output"
        );
    }
    Ok(whole)
}

/// A C-core style request: its header block, split over a padded HEADERS frame
/// with PRIORITY and a CONTINUATION frame, names the socket as `:authority`.
fn request_block() -> Vec<u8> {
    [
        // :method: POST, :scheme: http (static), :path (static name, indexed).
        hex("83 86 44"),
        string("/runcore.v1.RunService/Log", true),
        // :authority (static name, indexed).
        hex("41"),
        string(SOCKET, true),
        // content-type (static name, indexed).
        hex("5f"),
        string("application/grpc", false),
        // te, a new name, not indexed.
        hex("00"),
        string("te", false),
        string("trailers", false),
        // authorization (static name 23 = 15 + 8), never indexed.
        hex("1f08"),
        string("Bearer secret", false),
        // grpc-timeout, a new name, indexed.
        hex("40"),
        string("grpc-timeout", true),
        string("1S", true),
    ]
    .concat()
}

fn request_fields() -> Vec<hpack::Field> {
    let mut fields = plain(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/runcore.v1.RunService/Log"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("authorization", "Bearer secret"),
        ("grpc-timeout", "1S"),
    ]);
    fields[6].sensitive = true;
    fields
}

#[tokio::test]
async fn request_reaches_the_server_with_localhost_and_all_else_intact() {
    let block = request_block();
    let (first, second) = block.split_at(block.len() / 2);
    let priority = [0x80, 0, 0, 0, 15];
    let headers = [&[4][..], &priority, first, &[0; 4]].concat();
    let settings = frame(SETTINGS, 0, 0, &hex("0003 0000 0064 0004 0010 0000"));
    let data = frame(DATA, END_STREAM, 1, b"\0\0\0\0\x05hello");
    let input = [
        PREFACE.to_vec(),
        settings.clone(),
        frame(HEADERS, PADDED | PRIORITY, 1, &headers),
        frame(CONTINUATION, END_HEADERS, 1, second),
        data.clone(),
    ]
    .concat();

    let out = through_front_every_way(&input).await.unwrap();
    let seen = server_view(&out);
    let frame_of = |bytes: &[u8]| {
        Seen::Frame(
            FrameHeader::parse(bytes).unwrap(),
            bytes[HEADER_LEN..].to_vec(),
        )
    };
    let fields = request_fields();
    let want = [
        frame_of(&settings),
        Seen::Headers {
            stream: 1,
            end_stream: false,
            priority: Some(priority),
            fields,
        },
        frame_of(&data),
    ];
    assert_eq!(seen, want);
    assert!(out.ends_with(&data), "DATA bytes identical");
}

#[tokio::test]
async fn dynamic_table_state_carries_across_header_blocks() {
    // RFC 7541 C.4: each request refers to entries the ones before it inserted,
    // the :authority among them; a fourth refers to all three.
    let blocks = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        "8286 84be bfc0",
    ];
    let frames = blocks.iter().zip([1, 3, 5, 7]);
    let frames =
        frames.map(|(block, stream)| frame(HEADERS, END_HEADERS | END_STREAM, stream, &hex(block)));
    let input = [PREFACE.to_vec(), frames.collect::<Vec<_>>().concat()].concat();

    let seen = server_view(&through_front_every_way(&input).await.unwrap());
    let get = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
    ];
    let https = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "localhost"),
    ];
    let lists = [
        plain(&get),
        plain(&[&get[..], &[("cache-control", "no-cache")]].concat()),
        plain(&[&https[..], &[("custom-key", "custom-value")]].concat()),
        plain(
            &[
                &get[..3],
                &[
                    ("custom-key", "custom-value"),
                    ("cache-control", "no-cache"),
                    get[3],
                ],
            ]
            .concat(),
        ),
    ];
    let want = lists.into_iter().zip([1, 3, 5, 7]);
    let want: Vec<Seen> = want
        .map(|(fields, stream)| Seen::Headers {
            stream,
            end_stream: true,
            priority: None,
            fields,
        })
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn malformed_header_block_is_an_io_error() {
    // Index 62 before anything was inserted.
    let input = [
        PREFACE.to_vec(),
        frame(HEADERS, END_HEADERS, 1, &hex("82 be")),
    ]
    .concat();
    for (pipe, read) in [(1, 1), (1 << 20, 1 << 20)] {
        let err = through_front(&input, pipe, read).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}

#[tokio::test]
async fn a_client_that_is_not_http2_passes_untouched() {
    let input = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(100);
    assert_eq!(through_front_every_way(&input).await.unwrap(), input);
}

#[tokio::test]
async fn writes_go_to_the_inner_stream() {
    let (mut client, server) = duplex(64);
    let mut front = H2Front::new(server);
    front.write_all(b"from the server").await.unwrap();
    front.flush().await.unwrap();
    front.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"from the server");
    assert_eq!(
        front.is_write_vectored(),
        front.get_ref().is_write_vectored()
    );
}

#[tokio::test]
async fn a_client_closing_inside_a_header_frame_ends_the_stream() {
    let headers = frame(HEADERS, END_HEADERS, 1, &hex("8286 84"));
    let input = [&PREFACE[..], &headers[..headers.len() - 1]].concat();
    for (pipe, read) in [(1, 1), (1 << 20, 1 << 20)] {
        assert_eq!(through_front(&input, pipe, read).await.unwrap(), PREFACE);
    }
}
