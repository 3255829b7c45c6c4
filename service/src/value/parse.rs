//! The store's JSON, read back into values (Python's NaN/Infinity tokens
//! accepted, `_type`-tagged objects rebuilt as histograms and media).

use std::collections::BTreeMap;

use super::{as_f64, media_kind, MAX_DEPTH};
use crate::proto::v1::{value::Kind, Histogram, ListValue, MapValue, Media, Value};

/// Why a JSON document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON at byte {at}: {problem}")]
pub struct JsonError {
    at: usize,
    problem: &'static str,
}

/// Parses one JSON value, accepting Python's NaN/Infinity tokens, into a [`Value`].
/// Objects tagged `_type: histogram` or a media type come back as those kinds.
pub fn parse_json(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

/// Parses a JSON object into a map.
pub fn parse_json_map(text: &str) -> Result<BTreeMap<String, Value>, JsonError> {
    match parse_json(text)?.kind {
        Some(Kind::MapValue(m)) => Ok(m.fields),
        _ => Err(JsonError {
            at: 0,
            problem: "expected an object",
        }),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

pub(super) fn kind(k: Kind) -> Value {
    Value { kind: Some(k) }
}

impl Parser<'_> {
    fn err(&self, problem: &'static str) -> JsonError {
        JsonError {
            at: self.i,
            problem,
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH * 2 {
            return Err(self.err("nested too deep"));
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("unexpected end"));
        };
        match c {
            b'{' => self.object(depth),
            b'[' => {
                self.i += 1;
                let mut values = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(kind(Kind::ListValue(ListValue { values })));
                }
                loop {
                    values.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(kind(Kind::ListValue(ListValue { values })));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expected ',' or ']'"));
                    }
                }
            }
            b'"' => Ok(kind(Kind::StringValue(self.string()?))),
            b't' if self.eat("true") => Ok(kind(Kind::BoolValue(true))),
            b'f' if self.eat("false") => Ok(kind(Kind::BoolValue(false))),
            b'n' if self.eat("null") => Ok(kind(Kind::NullValue(true))),
            b'N' if self.eat("NaN") => Ok(kind(Kind::DoubleValue(f64::NAN))),
            b'I' if self.eat("Infinity") => Ok(kind(Kind::DoubleValue(f64::INFINITY))),
            b'-' if self.eat("-Infinity") => Ok(kind(Kind::DoubleValue(f64::NEG_INFINITY))),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.i += 1;
        let mut fields = BTreeMap::new();
        self.ws();
        if !self.eat("}") {
            loop {
                self.ws();
                if self.s.get(self.i) != Some(&b'"') {
                    return Err(self.err("expected a key"));
                }
                let k = self.string()?;
                self.ws();
                if !self.eat(":") {
                    return Err(self.err("expected ':'"));
                }
                let v = self.value(depth + 1)?;
                fields.insert(k, v);
                self.ws();
                if self.eat("}") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.err("expected ',' or '}'"));
                }
            }
        }
        Ok(tagged(fields))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                self.i += 1;
            }
            // The input is a &str and we stopped at ASCII, so this slice is valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad UTF-8"))?,
            );
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    self.i += 1;
                    let esc = *self.s.get(self.i).ok_or_else(|| self.err("bad escape"))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("bad \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let mut float = false;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.i += 1;
        }
        let text =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad number"))?;
        if !float {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(kind(Kind::IntValue(v)));
            }
        }
        text.parse::<f64>()
            .map(|v| kind(Kind::DoubleValue(v)))
            .map_err(|_| JsonError {
                at: start,
                problem: "bad number",
            })
    }
}

/// Rebuilds histogram and media values from their `_type`-tagged JSON objects.
fn tagged(fields: BTreeMap<String, Value>) -> Value {
    let tag = match fields.get("_type").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(t)) => t.clone(),
        _ => return kind(Kind::MapValue(MapValue { fields })),
    };
    if tag == "histogram" {
        let nums = |v: Option<&Value>| -> Vec<f64> {
            match v.and_then(|v| v.kind.as_ref()) {
                Some(Kind::ListValue(l)) => l.values.iter().filter_map(as_f64).collect(),
                _ => Vec::new(),
            }
        };
        let bins = nums(fields.get("bins"));
        let counts = nums(fields.get("values"))
            .into_iter()
            .map(|c| c as i64)
            .collect();
        return kind(Kind::Histogram(Histogram {
            bins,
            counts,
            values: Vec::new(),
            num_bins: 0,
        }));
    }
    if let Some(media) = media_kind(&tag) {
        let text = |k: &str| match fields.get(k).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        let size = fields.get("size").and_then(as_f64).unwrap_or(0.0);
        let extra = fields
            .iter()
            .filter(|(k, _)| !super::MEDIA_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return kind(Kind::Media(Media {
            path: text("path"),
            kind: media as i32,
            caption: text("caption"),
            sha256: text("sha256"),
            size: size as u64,
            extra,
        }));
    }
    kind(Kind::MapValue(MapValue { fields }))
}
