//! The RFC 7541 Appendix C examples, integer edge cases, refusals, and the
//! no-index encoder.

use super::super::testing::hex;
use super::*;

/// No bound on the decoded list: the RFC examples are about the table.
const UNBOUNDED: usize = usize::MAX;

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn owned(pairs: Pairs) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn text(fields: &[Field]) -> Vec<(String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    fields
        .iter()
        .map(|f| (text(&f.name), text(&f.value)))
        .collect()
}

/// Decodes `block` and checks the header list, then the dynamic table (newest
/// first) and its size, as the RFC prints them after each example.
fn check(decoder: &mut Decoder, block: &str, list: Pairs, table: Pairs, size: usize) {
    let fields = decoder.decode(&hex(block)).unwrap();
    assert_eq!(text(&fields), owned(list));
    assert_eq!(decoder.table().dynamic(), (owned(table), size));
}

fn decode_int(prefix: u32, bytes: &[u8]) -> Result<usize, HpackError> {
    let mut src = Reader { rest: bytes };
    let value = src.int(prefix)?;
    assert!(src.rest.is_empty(), "integer left bytes behind");
    Ok(value)
}

fn encoded_int(value: usize, prefix: u32, flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_int(value, prefix, flags, &mut out);
    out
}

#[test]
fn c_1_integer_examples() {
    assert_eq!(encoded_int(10, 5, 0), [0x0a]);
    assert_eq!(encoded_int(1337, 5, 0), [0x1f, 0x9a, 0x0a]);
    assert_eq!(encoded_int(42, 8, 0), [0x2a]);
    assert_eq!(
        decode_int(5, &[0xea]),
        Ok(10),
        "bits above the prefix are not the integer's"
    );
    assert_eq!(decode_int(5, &[0x1f, 0x9a, 0x0a]), Ok(1337));
    assert_eq!(decode_int(8, &[0x2a]), Ok(42));
}

#[test]
fn integers_round_trip_at_every_prefix_boundary() {
    for prefix in 1..=8 {
        let max = (1usize << prefix) - 1;
        let cases = [
            (0, 1),
            (max - 1, 1),
            (max, 2),
            (max + 1, 2),
            (max + 127, 2),
            (max + 128, 3),
        ];
        for (value, len) in cases {
            let bytes = encoded_int(value, prefix, 0);
            assert_eq!(bytes.len(), len, "{value} on {prefix} bits");
            assert_eq!(
                decode_int(prefix, &bytes),
                Ok(value),
                "{value} on {prefix} bits"
            );
        }
        let largest = u32::MAX as usize;
        assert_eq!(
            decode_int(prefix, &encoded_int(largest, prefix, 0)),
            Ok(largest)
        );
    }
    assert_eq!(encoded_int(3, 5, 0xe0), [0xe3]);
}

#[test]
fn integer_overflow_is_refused() {
    let too_big = encoded_int(u32::MAX as usize + 1, 5, 0);
    assert_eq!(decode_int(5, &too_big), Err(HpackError::IntegerOverflow));
    // 31 + (2^32 - 1): five continuation bytes, one past u32::MAX's reach.
    let over = [0x1f, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert_eq!(decode_int(5, &over), Err(HpackError::IntegerOverflow));
    // A small value padded with six continuation bytes.
    let long = [0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(decode_int(5, &long), Err(HpackError::IntegerOverflow));
}

#[test]
fn truncated_integer_is_refused() {
    assert_eq!(decode_int(5, &[]), Err(HpackError::Truncated));
    assert_eq!(decode_int(5, &[0x1f]), Err(HpackError::Truncated));
    assert_eq!(decode_int(5, &[0x1f, 0x9a]), Err(HpackError::Truncated));
}

#[test]
fn c_2_literal_and_indexed_forms() {
    let mut d = Decoder::new(UNBOUNDED);
    let block = "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572";
    let entry = [("custom-key", "custom-header")];
    check(&mut d, block, &entry, &entry, 55);

    let mut d = Decoder::new(UNBOUNDED);
    let block = "040c 2f73 616d 706c 652f 7061 7468";
    check(&mut d, block, &[(":path", "/sample/path")], &[], 0);

    let mut d = Decoder::new(UNBOUNDED);
    let fields = d
        .decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
        .unwrap();
    let want = Field {
        name: b"password".to_vec(),
        value: b"secret".to_vec(),
        sensitive: true,
    };
    assert_eq!(fields, [want]);
    assert_eq!(d.table().dynamic(), (Vec::new(), 0));

    let mut d = Decoder::new(UNBOUNDED);
    check(&mut d, "82", &[(":method", "GET")], &[], 0);
}

const REQUEST_1: Pairs = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQUEST_2: Pairs = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: Pairs = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQUEST_TABLE: Pairs = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

/// The three requests of C.3 and C.4, with the table after each.
fn check_requests(blocks: [&str; 3]) {
    let mut d = Decoder::new(UNBOUNDED);
    check(&mut d, blocks[0], REQUEST_1, &REQUEST_TABLE[2..], 57);
    check(&mut d, blocks[1], REQUEST_2, &REQUEST_TABLE[1..], 110);
    check(&mut d, blocks[2], REQUEST_3, REQUEST_TABLE, 164);
}

#[test]
fn c_3_requests_without_huffman() {
    check_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c_4_requests_with_huffman() {
    check_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";

/// The three responses of C.5 and C.6, with the table after each.
fn check_responses(blocks: [&str; 3]) {
    let mut d = Decoder::new(UNBOUNDED);
    d.table.set_max_size(256);
    let first = [
        (":status", "302"),
        ("cache-control", "private"),
        ("date", DATE_1),
        ("location", LOCATION),
    ];
    let table = [
        ("location", LOCATION),
        ("date", DATE_1),
        ("cache-control", "private"),
        (":status", "302"),
    ];
    check(&mut d, blocks[0], &first, &table, 222);

    let second = [
        (":status", "307"),
        ("cache-control", "private"),
        ("date", DATE_1),
        ("location", LOCATION),
    ];
    let table = [
        (":status", "307"),
        ("location", LOCATION),
        ("date", DATE_1),
        ("cache-control", "private"),
    ];
    check(&mut d, blocks[1], &second, &table, 222);

    let third = [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", DATE_2),
        ("location", LOCATION),
        ("content-encoding", "gzip"),
        ("set-cookie", COOKIE),
    ];
    let table = [
        ("set-cookie", COOKIE),
        ("content-encoding", "gzip"),
        ("date", DATE_2),
    ];
    check(&mut d, blocks[2], &third, &table, 215);
}

#[test]
fn c_5_responses_without_huffman() {
    check_responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c_6_responses_with_huffman() {
    check_responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn bad_indexes_are_refused() {
    let mut d = Decoder::new(UNBOUNDED);
    assert_eq!(d.decode(&[0x80]), Err(HpackError::BadIndex(0)));
    assert_eq!(d.decode(&[0xbe]), Err(HpackError::BadIndex(62)));
    // Literal without indexing, name index 62 (15 + 47).
    assert_eq!(d.decode(&[0x0f, 0x2f, 0x00]), Err(HpackError::BadIndex(62)));
}

#[test]
fn truncated_fields_are_refused() {
    let mut d = Decoder::new(UNBOUNDED);
    assert_eq!(d.decode(&[0x40, 0x05, b'a']), Err(HpackError::Truncated));
    assert_eq!(d.decode(&[0x41]), Err(HpackError::Truncated));
    assert_eq!(
        d.decode(&[0x01, 0x03, b'a', b'b']),
        Err(HpackError::Truncated)
    );
}

#[test]
fn huffman_errors_surface() {
    let mut d = Decoder::new(UNBOUNDED);
    let err = d.decode(&[0x01, 0x81, 0xff]);
    assert_eq!(err, Err(HpackError::Huffman(HuffmanError::PaddingTooLong)));
}

#[test]
fn size_updates_apply_up_to_the_limit() {
    let mut d = Decoder::new(UNBOUNDED);
    d.decode(&hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"))
        .unwrap();
    // Two updates at the start of a block: to 0 (clears the table), then 4096.
    let fields = d.decode(&hex("20 3fe1 1f 82")).unwrap();
    assert_eq!(text(&fields), owned(&[(":method", "GET")]));
    assert_eq!(d.table().dynamic(), (Vec::new(), 0));
    assert_eq!(d.decode(&[0xbe]), Err(HpackError::BadIndex(62)));

    assert_eq!(
        d.decode(&encoded_int(MAX_TABLE_SIZE, 5, 0x20)),
        Ok(Vec::new())
    );
    let over = encoded_int(MAX_TABLE_SIZE + 1, 5, 0x20);
    assert_eq!(
        d.decode(&over),
        Err(HpackError::TableSizeTooLarge(MAX_TABLE_SIZE + 1))
    );
}

#[test]
fn size_update_after_a_field_is_refused() {
    let mut d = Decoder::new(UNBOUNDED);
    assert_eq!(
        d.decode(&[0x82, 0x20]),
        Err(HpackError::LateTableSizeUpdate)
    );
}

#[test]
fn decoded_list_is_bounded() {
    // ":method: GET" counts 7 + 3 + 32 = 42.
    let mut d = Decoder::new(84);
    assert_eq!(d.decode(&[0x82, 0x82]).map(|f| f.len()), Ok(2));
    assert_eq!(
        d.decode(&[0x82, 0x82, 0x82]),
        Err(HpackError::ListTooLarge(84))
    );
}

fn field(name: &str, value: &str, sensitive: bool) -> Field {
    Field {
        name: name.into(),
        value: value.into(),
        sensitive,
    }
}

#[test]
fn encoder_uses_static_indexes_and_plain_literals_only() {
    let cases = [
        (field(":method", "POST", false), hex("83")),
        (
            field(":authority", "localhost", false),
            [&[0x01, 0x09][..], b"localhost"].concat(),
        ),
        (
            field("te", "trailers", false),
            [&[0x00, 0x02][..], b"te", &[0x08], b"trailers"].concat(),
        ),
        (
            field("authorization", "s", true),
            [&[0x1f, 0x08, 0x01][..], b"s"].concat(),
        ),
        (
            field(":method", "GET", true),
            [&[0x12, 0x03][..], b"GET"].concat(),
        ),
    ];
    for (field, want) in cases {
        let mut out = Vec::new();
        encode(std::slice::from_ref(&field), &mut out);
        assert_eq!(out, want, "{field:?}");
    }
}

#[test]
fn encoded_list_decodes_identically_and_leaves_the_table_empty() {
    let long = "v".repeat(300);
    let fields = vec![
        field(":method", "POST", false),
        field(":path", "/runcore.v1.RunService/Log", false),
        field(":authority", "localhost", false),
        field("content-type", "application/grpc", false),
        field("authorization", "Bearer token", true),
        field("x-custom-header-with-a-longer-name", &long, false),
        field("", "", false),
    ];
    let mut block = Vec::new();
    encode(&fields, &mut block);
    let mut server = Decoder::new(UNBOUNDED);
    assert_eq!(server.decode(&block), Ok(fields));
    assert_eq!(server.table().dynamic(), (Vec::new(), 0));
}
