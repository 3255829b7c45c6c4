//! The HPACK Huffman code (RFC 7541 Appendix B) and its decoder.
//!
//! The code is written out below as data, one `(code, length)` pair per symbol, the
//! code right-aligned in a `u32` as in the RFC's "code as hex" column. The decoding
//! tree is built from that table at compile time, and the build refuses (as a
//! compile error) a table that is not a complete prefix code, so a mistyped entry
//! cannot reach a running binary.
//!
//! Only decoding lives here: the front re-encodes every string as a plain literal.

use std::fmt;

/// Symbol 256, end of string: never part of a string, its leading bits pad the
/// last byte (RFC 7541 §5.2).
const EOS: usize = 256;

/// RFC 7541 Appendix B: `CODES[symbol] = (code, length in bits)`, symbols 0..=255
/// are byte values and 256 is EOS. The comment on each row is its first symbol.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), // 0
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), // 4
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28), // 8
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), // 12
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), // 16
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), // 20
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), // 24
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28), // 28
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12), // 32
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), // 36
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11), // 40
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), // 44
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), // 48
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), // 52
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8), // 56
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), // 60
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7), // 64
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), // 68
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), // 72
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), // 76
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7), // 80
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), // 84
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13), // 88
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6), // 92
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), // 96
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6), // 100
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), // 104
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), // 108
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), // 112
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7), // 116
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), // 120
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28), // 124
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), // 128
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), // 132
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), // 136
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23), // 140
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), // 144
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23), // 148
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), // 152
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), // 156
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), // 160
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21), // 164
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), // 168
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23), // 172
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), // 176
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), // 180
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22), // 184
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23), // 188
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), // 192
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), // 196
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), // 200
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25), // 204
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27), // 208
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), // 212
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), // 216
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27), // 220
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21), // 224
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23), // 228
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), // 232
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), // 236
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), // 240
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27), // 244
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), // 248
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), // 252
    (0x3fffffff, 30), // 256
];

/// A child in [`TREE`] with this bit set is a leaf holding a symbol; otherwise it
/// is the index of another internal node.
const LEAF: u16 = 0x8000;

/// The code's binary tree: node `n` has children `TREE[n][0]` (bit 0) and
/// `TREE[n][1]` (bit 1); node 0 is the root. A complete prefix code of 257
/// symbols has exactly 256 internal nodes.
static TREE: [[u16; 2]; EOS] = build_tree();

/// Builds [`TREE`] from [`CODES`], refusing a table with a code that is too long
/// for its length, two codes where one is a prefix of the other, or a gap (a bit
/// string that no code starts with), so that decoding can walk the tree unchecked.
const fn build_tree() -> [[u16; 2]; EOS] {
    let mut tree = [[0u16; 2]; EOS];
    let mut nodes = 1;
    let mut symbol = 0;
    while symbol < CODES.len() {
        let (code, len) = CODES[symbol];
        assert!(
            len >= 1 && len <= 30 && (code >> len) == 0,
            "code wider than its length"
        );
        let mut node = 0;
        let mut depth = 1;
        while depth < len {
            let bit = ((code >> (len - depth)) & 1) as usize;
            let child = tree[node][bit];
            if child == 0 {
                assert!(nodes < EOS, "more internal nodes than a complete code has");
                tree[node][bit] = nodes as u16;
                node = nodes;
                nodes += 1;
            } else {
                assert!(child & LEAF == 0, "a code starts with another code");
                node = child as usize;
            }
            depth += 1;
        }
        let bit = (code & 1) as usize;
        assert!(tree[node][bit] == 0, "a code starts with another code");
        tree[node][bit] = LEAF | symbol as u16;
        symbol += 1;
    }
    let mut node = 0;
    while node < nodes {
        assert!(
            tree[node][0] != 0 && tree[node][1] != 0,
            "the code has a gap"
        );
        node += 1;
    }
    tree
}

/// Why a Huffman-coded string literal was refused (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HuffmanError {
    /// The string contains the EOS symbol.
    Eos,
    /// The last byte's padding is 8 bits or more.
    PaddingTooLong,
    /// The padding is not a prefix of EOS (not all ones).
    PaddingNotOnes,
}

impl fmt::Display for HuffmanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HuffmanError::Eos => "Huffman string contains the EOS symbol",
            HuffmanError::PaddingTooLong => "Huffman string padding is longer than 7 bits",
            HuffmanError::PaddingNotOnes => "Huffman string padding is not all ones",
        })
    }
}

impl std::error::Error for HuffmanError {}

/// Decodes the Huffman-coded string `src`, appending its bytes to `out`.
pub(super) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let mut node = 0usize;
    // Bits read since the last whole symbol, and whether all of them were ones:
    // at the end they are the padding.
    let mut pending = 0u32;
    let mut all_ones = true;
    for &byte in src {
        for shift in (0..8).rev() {
            let bit = (byte >> shift) & 1;
            pending += 1;
            all_ones &= bit == 1;
            let child = TREE[node][usize::from(bit)];
            if child & LEAF == 0 {
                node = usize::from(child);
                continue;
            }
            let symbol = usize::from(child & !LEAF);
            if symbol == EOS {
                return Err(HuffmanError::Eos);
            }
            out.push(symbol as u8);
            node = 0;
            pending = 0;
            all_ones = true;
        }
    }
    if pending > 7 {
        return Err(HuffmanError::PaddingTooLong);
    }
    if !all_ones {
        return Err(HuffmanError::PaddingNotOnes);
    }
    Ok(())
}

/// Huffman-codes `src`, padding with ones: what a client's encoder sends. Only
/// tests need it (the front never Huffman-codes).
#[cfg(test)]
pub(super) fn encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &byte in src {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    /// Appendix B is a canonical code: within a length, codes follow symbol order,
    /// and each length's first code follows the previous length's last one. Holding
    /// the typed table to that rule catches a mistyped code the tree build's checks
    /// (prefix-free, complete) might let through.
    #[test]
    fn table_is_the_canonical_code_of_its_lengths() {
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut expected = 0u32;
        let mut prev_len = CODES[order[0]].1;
        for (i, &symbol) in order.iter().enumerate() {
            let (code, len) = CODES[symbol];
            if i > 0 {
                expected = (expected + 1) << (len - prev_len);
            }
            assert_eq!(code, expected, "symbol {symbol}");
            prev_len = len;
        }
        assert_eq!(CODES[EOS], (0x3fff_ffff, 30));
    }

    #[test]
    fn every_symbol_decodes_alone() {
        for byte in 0..=255u8 {
            let coded = encode(&[byte]);
            assert_eq!(decoded(&coded), Ok(vec![byte]), "symbol {byte}");
        }
    }

    #[test]
    fn every_symbol_decodes_in_one_string() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(decoded(&encode(&all)), Ok(all));
    }

    #[test]
    fn rfc_7541_c_4_1_authority() {
        let coded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decoded(&coded), Ok(b"www.example.com".to_vec()));
        assert_eq!(encode(b"www.example.com"), coded);
    }

    #[test]
    fn empty_string_is_empty() {
        assert_eq!(decoded(&[]), Ok(Vec::new()));
    }

    #[test]
    fn eos_in_string_is_refused() {
        // EOS is 30 ones: four 0xff bytes hold it whole.
        assert_eq!(decoded(&[0xff; 4]), Err(HuffmanError::Eos));
        // 'a' (00011) then EOS.
        assert_eq!(
            decoded(&[0x1f, 0xff, 0xff, 0xff, 0xff]),
            Err(HuffmanError::Eos)
        );
    }

    #[test]
    fn padding_of_eight_bits_or_more_is_refused() {
        assert_eq!(decoded(&[0xff]), Err(HuffmanError::PaddingTooLong));
        // '0' (00000) then 11 one bits.
        assert_eq!(decoded(&[0x07, 0xff]), Err(HuffmanError::PaddingTooLong));
    }

    #[test]
    fn padding_with_a_zero_bit_is_refused() {
        // '0' (00000) then padding 000.
        assert_eq!(decoded(&[0x00]), Err(HuffmanError::PaddingNotOnes));
        // '0' then padding 110.
        assert_eq!(decoded(&[0x06]), Err(HuffmanError::PaddingNotOnes));
        // '0' then 111: fine.
        assert_eq!(decoded(&[0x07]), Ok(b"0".to_vec()));
    }
}
