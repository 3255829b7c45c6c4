//! The state machine on whole and partial inputs: what passes, what is rewritten,
//! what is refused.

use super::super::frame::{PADDED, PRIORITY};
use super::super::hpack::{self, Field};
use super::super::testing::{frame, hex, plain, server_view, string, Seen};
use super::*;

const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;

/// Feeds all of `input` at once; all of it must be consumed.
fn rewrite(input: &[u8]) -> io::Result<Vec<u8>> {
    let mut rewriter = Rewriter::new();
    let mut out = Vec::new();
    let used = rewriter.feed(input, &mut out)?;
    assert_eq!(used, input.len(), "input left over");
    Ok(out)
}

fn with_preface(frames: &[Vec<u8>]) -> Vec<u8> {
    [vec![PREFACE.to_vec()], frames.to_vec()].concat().concat()
}

fn refused(input: &[u8]) -> String {
    let err = rewrite(input).expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    err.to_string()
}

#[test]
fn frames_without_header_blocks_pass_untouched() {
    let input = with_preface(&[
        frame(SETTINGS, 0, 0, &hex("0003 0000 0064 0004 0010 0000")),
        frame(SETTINGS, 0x1, 0, b""),
        frame(0x6, 0, 0, b"pingping"),
        frame(0x8, 0, 0, &hex("0001 0000")),
        frame(0x2, 0, 3, &hex("0000 0001 10")),
        frame(DATA, 0x1, 1, b"\0\0\0\0\x02hi"),
        frame(0x3, 0, 1, &hex("0000 0008")),
        frame(0xfa, 0xff, 7, b"unknown frame type"),
        frame(0x7, 0, 0, &hex("0000 0000 0000 0000")),
    ]);
    assert_eq!(rewrite(&input).unwrap(), input);
}

#[test]
fn a_client_that_is_not_http2_passes_untouched() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PRI * HTTP/1.1\r\n\r\n",
        b"P",
    ] {
        assert_eq!(rewrite(input).unwrap(), input);
    }
    // A mismatch found after part of the preface arrived on its own.
    let mut rewriter = Rewriter::new();
    let mut out = Vec::new();
    assert_eq!(rewriter.feed(b"PRI * HTTP/2", &mut out).unwrap(), 12);
    assert_eq!(rewriter.passthrough(), None);
    let rest = b".1\r\n\r\n\x01\x00\x00\x00";
    assert_eq!(rewriter.feed(rest, &mut out).unwrap(), rest.len());
    assert_eq!(out, [&b"PRI * HTTP/2"[..], rest].concat());
    assert_eq!(rewriter.passthrough(), Some(usize::MAX));
}

#[test]
fn socket_path_authorities_become_localhost() {
    let paths = [
        "/tmp/x/runcore.sock",
        "%2Ftmp%2Fx%2Fruncore.sock",
        "unix:/tmp/x/runcore.sock",
        "unix:%2Ftmp%2Fa%20b.sock",
    ];
    for path in paths {
        for huffman in [false, true] {
            // Incrementally indexed, then the entry by index on the next stream;
            // without indexing; never indexed.
            let blocks = [
                [hex("8384 8741"), string(path, huffman)].concat(),
                hex("8384 87be"),
                [hex("8384 8701"), string(path, huffman)].concat(),
                [hex("8384 8711"), string(path, huffman)].concat(),
            ];
            let frames: Vec<Vec<u8>> = (0..4)
                .map(|i| frame(HEADERS, END_HEADERS, 2 * i + 1, &blocks[i as usize]))
                .collect();
            let seen = server_view(&rewrite(&with_preface(&frames)).unwrap());
            let request = [
                (":method", "POST"),
                (":path", "/"),
                (":scheme", "https"),
                (":authority", "localhost"),
            ];
            for (i, seen) in seen.into_iter().enumerate() {
                let mut fields = plain(&request);
                fields[3].sensitive = i == 3;
                let stream = 2 * i as u32 + 1;
                let want = Seen::Headers {
                    stream,
                    end_stream: false,
                    priority: None,
                    fields,
                };
                assert_eq!(seen, want, "{path} huffman={huffman} block {i}");
            }
        }
    }
}

#[test]
fn trailers_without_authority_keep_every_field_and_end_stream() {
    let block = [
        hex("40"),
        string("grpc-status", true),
        string("0", false),
        hex("00"),
        string("grpc-message", false),
        string("all good", true),
        hex("be"),
    ]
    .concat();
    let input = with_preface(&[frame(HEADERS, END_HEADERS | END_STREAM, 9, &block)]);
    let fields = plain(&[
        ("grpc-status", "0"),
        ("grpc-message", "all good"),
        ("grpc-status", "0"),
    ]);
    let want = Seen::Headers {
        stream: 9,
        end_stream: true,
        priority: None,
        fields,
    };
    assert_eq!(server_view(&rewrite(&input).unwrap()), [want]);
}

#[test]
fn padding_goes_and_priority_stays() {
    let payload = [
        &[3u8][..],
        &[0x80, 0, 0, 1, 42],
        &hex("8286 8441"),
        &string("/s", false),
        &[0; 3],
    ]
    .concat();
    let input = with_preface(&[frame(HEADERS, PADDED | PRIORITY | END_HEADERS, 3, &payload)]);
    let out = rewrite(&input).unwrap();
    let fields = plain(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
    ]);
    let want = Seen::Headers {
        stream: 3,
        end_stream: false,
        priority: Some([0x80, 0, 0, 1, 42]),
        fields,
    };
    assert_eq!(server_view(&out), [want]);
}

#[test]
fn a_large_block_is_written_as_continuations() {
    let big = "x".repeat(40_000);
    let fields = plain(&[
        (":authority", "/tmp/a b.sock"),
        ("x-big", &big),
        (":path", "/"),
    ]);
    let mut block = Vec::new();
    hpack::encode(&fields, &mut block);
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    let mut frames = vec![frame(HEADERS, 0, 1, chunks[0])];
    frames.push(frame(CONTINUATION, 0, 1, chunks[1]));
    frames.push(frame(CONTINUATION, END_HEADERS, 1, chunks[2]));
    let out = rewrite(&with_preface(&frames)).unwrap();
    let want = plain(&[(":authority", "localhost"), ("x-big", &big), (":path", "/")]);
    let want = Seen::Headers {
        stream: 1,
        end_stream: false,
        priority: None,
        fields: want,
    };
    assert_eq!(server_view(&out), [want]);
}

#[test]
fn a_header_frame_waits_until_it_is_whole() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &hex("8286 84be")));
    let mut rewriter = Rewriter::new();
    rewriter
        .decoder
        .decode(&[&hex("41")[..], &string("a", false)].concat())
        .unwrap();
    let mut out = Vec::new();
    let split = input.len() - 2;
    assert_eq!(
        rewriter.feed(&input[..split], &mut out).unwrap(),
        PREFACE.len()
    );
    assert_eq!(out, PREFACE);
    let used = rewriter.feed(&input[PREFACE.len()..], &mut out).unwrap();
    assert_eq!(used, input.len() - PREFACE.len());
    let fields = plain(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
    ]);
    assert_eq!(
        server_view(&out),
        [Seen::Headers {
            stream: 1,
            end_stream: false,
            priority: None,
            fields
        }]
    );
}

#[test]
fn data_frames_pass_through_in_pieces() {
    let mut rewriter = Rewriter::new();
    let mut out = Vec::new();
    let input = with_preface(&[frame(DATA, 0, 1, b"abcdef")]);
    let head_end = PREFACE.len() + HEADER_LEN;
    assert_eq!(
        rewriter.feed(&input[..head_end + 2], &mut out).unwrap(),
        head_end + 2
    );
    assert_eq!(rewriter.passthrough(), Some(4));
    rewriter.passed(3);
    assert_eq!(rewriter.passthrough(), Some(1));
    rewriter.passed(1);
    assert_eq!(rewriter.passthrough(), None);
}

#[test]
fn protocol_violations_are_refused() {
    let request = frame(HEADERS, END_HEADERS, 1, &hex("82"));
    let open = frame(HEADERS, 0, 1, &hex("82"));
    let cases = [
        (
            frame(0x5, END_HEADERS, 1, &hex("0000 0002 82")),
            "PUSH_PROMISE",
        ),
        (
            frame(CONTINUATION, END_HEADERS, 1, &hex("82")),
            "CONTINUATION",
        ),
        (frame(HEADERS, END_HEADERS, 0, &hex("82")), "stream 0"),
        (
            [open.clone(), frame(DATA, 0, 1, b"")].concat(),
            "interrupted",
        ),
        (
            [
                open.clone(),
                frame(CONTINUATION, END_HEADERS, 3, &hex("82")),
            ]
            .concat(),
            "interrupted",
        ),
        ([open, request.clone()].concat(), "interrupted"),
        (
            frame(HEADERS, END_HEADERS | PADDED, 1, &hex("05 82")),
            "padding",
        ),
        (frame(HEADERS, END_HEADERS, 1, &hex("be")), "index 62"),
        (
            frame(HEADERS, END_HEADERS, 1, &hex("3fe2 ff03")),
            "size update",
        ),
    ];
    for (frames, why) in cases {
        let message = refused(&with_preface(&[request.clone(), frames]));
        assert!(message.contains(why), "{message:?} should say {why:?}");
    }
}

#[test]
fn header_blocks_are_bounded() {
    // A frame header announcing too much is refused before its payload arrives.
    let mut head = frame(HEADERS, 0, 1, b"");
    head[..3].copy_from_slice(&[0x10, 0x00, 0x01]);
    assert!(refused(&with_preface(&[head])).contains("header frame of"));
    // So is a block that grows too large across CONTINUATION frames.
    let half = vec![0u8; MAX_HEADER_BYTES / 2 + 1];
    let frames = [
        frame(HEADERS, 0, 1, &half),
        frame(CONTINUATION, END_HEADERS, 1, &half),
    ];
    assert!(refused(&with_preface(&frames)).contains("header block over"));
}

#[test]
fn field_order_and_bytes_survive_rewriting() {
    let odd = "caf\u{e9} \t\u{7f}";
    let block = [
        hex("00"),
        string("x-b", false),
        string(odd, true),
        hex("41"),
        string("h", false),
        hex("00"),
        string("x-a", true),
        string("", false),
    ]
    .concat();
    let out = rewrite(&with_preface(&[frame(HEADERS, END_HEADERS, 1, &block)])).unwrap();
    let want: Vec<Field> = plain(&[("x-b", odd), (":authority", "localhost"), ("x-a", "")]);
    assert_eq!(
        server_view(&out),
        [Seen::Headers {
            stream: 1,
            end_stream: false,
            priority: None,
            fields: want
        }]
    );
}
