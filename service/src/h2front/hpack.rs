//! HPACK (RFC 7541) for one direction of one connection: a [`Decoder`] that
//! follows the client's encoder, dynamic table included, and [`encode`], which
//! writes a header list the server's decoder reads without touching its dynamic
//! table.

use std::fmt;

use super::huffman::{self, HuffmanError};
use super::table::{Table, ENTRY_OVERHEAD, STATIC};

/// The dynamic table's size before any size update: SETTINGS_HEADER_TABLE_SIZE's
/// initial value (RFC 7540 §6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;

/// Largest dynamic table size update accepted. The client may raise its table up
/// to what the server advertised, which the front does not see; servers that
/// advertise anything advertise far less than this.
const MAX_TABLE_SIZE: usize = 65_536;

/// Largest integer accepted; every length and index the front meets is far
/// smaller. Five continuation bytes after the prefix hold it.
const MAX_INT: u64 = u32::MAX as u64;

/// One header field as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    pub(super) name: Vec<u8>,
    pub(super) value: Vec<u8>,
    /// Sent as "never indexed"; an intermediary re-encoding the field must keep
    /// that representation (RFC 7541 §6.2.3).
    pub(super) sensitive: bool,
}

/// Why a header block was refused. Each is a COMPRESSION_ERROR in HTTP/2 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer above [`MAX_INT`] or with too many continuation bytes.
    IntegerOverflow,
    /// Index 0, or an index past the end of the dynamic table.
    BadIndex(usize),
    Huffman(HuffmanError),
    /// A dynamic table size update above [`MAX_TABLE_SIZE`].
    TableSizeTooLarge(usize),
    /// A dynamic table size update after a header field (RFC 7541 §4.2).
    LateTableSizeUpdate,
    /// The decoded header list is over the decoder's bound.
    ListTooLarge(usize),
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::IntegerOverflow => f.write_str("header block integer too large"),
            HpackError::BadIndex(i) => write!(f, "header table index {i} does not exist"),
            HpackError::Huffman(e) => e.fmt(f),
            HpackError::TableSizeTooLarge(n) => {
                write!(
                    f,
                    "dynamic table size update to {n} is over {MAX_TABLE_SIZE}"
                )
            }
            HpackError::LateTableSizeUpdate => {
                f.write_str("dynamic table size update after a header field")
            }
            HpackError::ListTooLarge(n) => write!(f, "decoded header list over {n} bytes"),
        }
    }
}

impl std::error::Error for HpackError {}

impl From<HuffmanError> for HpackError {
    fn from(e: HuffmanError) -> Self {
        HpackError::Huffman(e)
    }
}

/// Decodes the client's header blocks, in the order sent, keeping the dynamic
/// table in step with the client's encoder.
#[derive(Debug)]
pub(super) struct Decoder {
    table: Table,
    /// Bound on one decoded header list, counted as RFC 7540 §6.5.2 counts it
    /// (name + value + 32 per field): indexed fields expand, so the block's own
    /// bound does not bound this.
    max_list: usize,
}

impl Decoder {
    pub(super) fn new(max_list: usize) -> Self {
        Decoder {
            table: Table::new(DEFAULT_TABLE_SIZE),
            max_list,
        }
    }

    /// Decodes one complete header block.
    pub(super) fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, HpackError> {
        let mut src = Reader { rest: block };
        let mut fields = Vec::new();
        let mut list_size = 0;
        while let Some(first) = src.peek() {
            let field = if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = src.int(7)?;
                let (name, value) = self.table.get(index).ok_or(HpackError::BadIndex(index))?;
                Field {
                    name: name.to_vec(),
                    value: value.to_vec(),
                    sensitive: false,
                }
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing (§6.2.1).
                let field = self.literal(&mut src, 6, false)?;
                self.table.insert(field.name.clone(), field.value.clone());
                field
            } else if first & 0x20 != 0 {
                // Dynamic table size update (§6.3).
                if !fields.is_empty() {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let size = src.int(5)?;
                if size > MAX_TABLE_SIZE {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.table.set_max_size(size);
                continue;
            } else {
                // Literal without indexing (§6.2.2) or never indexed (§6.2.3).
                self.literal(&mut src, 4, first & 0x10 != 0)?
            };
            list_size += field.name.len() + field.value.len() + ENTRY_OVERHEAD;
            if list_size > self.max_list {
                return Err(HpackError::ListTooLarge(self.max_list));
            }
            fields.push(field);
        }
        Ok(fields)
    }

    /// A literal field whose name index has a `prefix`-bit prefix (0: literal name).
    fn literal(
        &self,
        src: &mut Reader<'_>,
        prefix: u32,
        sensitive: bool,
    ) -> Result<Field, HpackError> {
        let index = src.int(prefix)?;
        let name = if index == 0 {
            src.string()?
        } else {
            let (name, _) = self.table.get(index).ok_or(HpackError::BadIndex(index))?;
            name.to_vec()
        };
        let value = src.string()?;
        Ok(Field {
            name,
            value,
            sensitive,
        })
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &Table {
        &self.table
    }
}

/// The unread rest of a header block.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn byte(&mut self) -> Result<u8, HpackError> {
        let (&first, rest) = self.rest.split_first().ok_or(HpackError::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], HpackError> {
        if len > self.rest.len() {
            return Err(HpackError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// An integer with a `prefix`-bit prefix in the next byte (§5.1).
    fn int(&mut self, prefix: u32) -> Result<usize, HpackError> {
        let prefix_max = (1u64 << prefix) - 1;
        let mut value = u64::from(self.byte()?) & prefix_max;
        if value < prefix_max {
            return Ok(value as usize);
        }
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            value += u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
        if value > MAX_INT {
            return Err(HpackError::IntegerOverflow);
        }
        usize::try_from(value).map_err(|_| HpackError::IntegerOverflow)
    }

    /// A string literal, Huffman-decoded if its H bit is set (§5.2).
    fn string(&mut self) -> Result<Vec<u8>, HpackError> {
        let huffman = self.peek().is_some_and(|b| b & 0x80 != 0);
        let len = self.int(7)?;
        let raw = self.take(len)?;
        if !huffman {
            return Ok(raw.to_vec());
        }
        // The shortest code is 5 bits.
        let mut out = Vec::with_capacity(raw.len() * 8 / 5);
        huffman::decode(raw, &mut out)?;
        Ok(out)
    }
}

/// Appends `fields` to `out` as a header block that leaves the decoder's dynamic
/// table as it was: exact static-table matches as indexed fields, everything else
/// as a literal without indexing (never indexed where the client said so), the
/// name by static index when the static table has it, strings plain.
pub(super) fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for field in fields {
        let is_name = |&(name, _): &(&str, &str)| name.as_bytes() == field.name;
        let is_field = |&(name, value): &(&str, &str)| {
            name.as_bytes() == field.name && value.as_bytes() == field.value
        };
        if !field.sensitive {
            if let Some(i) = STATIC.iter().position(is_field) {
                encode_int(i + 1, 7, 0x80, out);
                continue;
            }
        }
        let flags = if field.sensitive { 0x10 } else { 0x00 };
        match STATIC.iter().position(is_name) {
            Some(i) => encode_int(i + 1, 4, flags, out),
            None => {
                out.push(flags);
                encode_string(&field.name, out);
            }
        }
        encode_string(&field.value, out);
    }
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_int(s.len(), 7, 0x00, out);
    out.extend_from_slice(s);
}

/// Appends `value` with a `prefix`-bit prefix, the byte's other bits `flags` (§5.1).
fn encode_int(value: usize, prefix: u32, flags: u8, out: &mut Vec<u8>) {
    let prefix_max = (1usize << prefix) - 1;
    if value < prefix_max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | prefix_max as u8);
    let mut rest = value - prefix_max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests;
