//! Reading the numbers out of one line of `history.jsonl` or `events.jsonl`,
//! without building a value tree: the index needs only numeric leaves.
//!
//! Nested objects are flattened with `.` (`{"val": {"loss": 1}}` is `val.loss`,
//! the name W&B gives a nested history key). NaN, Infinity and -Infinity (the
//! store writes Python's tokens) are numbers here. Strings, booleans, nulls,
//! lists and `_type`-tagged objects (histograms, media) are skipped.

/// Deepest nesting read; deeper objects are skipped.
const MAX_DEPTH: usize = 32;

/// Why a line could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLine;

/// Reuses its buffers from line to line.
#[derive(Default)]
pub struct LineScanner {
    path: String,
    /// Length of the top-level key at the start of `path`.
    top_len: usize,
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl LineScanner {
    /// Calls `emit(key, top, value)` for each numeric leaf of a JSON object line,
    /// where `key[..top]` is the top-level key the leaf is under.
    pub fn scan(
        &mut self,
        line: &str,
        emit: &mut impl FnMut(&str, usize, f64),
    ) -> Result<(), BadLine> {
        let mut c = Cursor {
            s: line,
            b: line.as_bytes(),
            i: 0,
        };
        c.ws();
        if c.peek() != Some(b'{') {
            return Err(BadLine);
        }
        self.path.clear();
        self.object(&mut c, 0, emit)?;
        c.ws();
        if c.i == c.b.len() {
            Ok(())
        } else {
            Err(BadLine)
        }
    }

    /// Reads an object at `c` (on its `{`), with `self.path` as its prefix.
    fn object(
        &mut self,
        c: &mut Cursor<'_>,
        depth: usize,
        emit: &mut impl FnMut(&str, usize, f64),
    ) -> Result<(), BadLine> {
        c.i += 1;
        let base = self.path.len();
        let mut first = true;
        loop {
            c.ws();
            match c.peek() {
                Some(b'}') => {
                    c.i += 1;
                    return Ok(());
                }
                Some(b',') if !first => {
                    c.i += 1;
                    c.ws();
                }
                _ if first => {}
                _ => return Err(BadLine),
            }
            self.path.truncate(base);
            if base > 0 {
                self.path.push('.');
            }
            let key_start = self.path.len();
            c.string(Some(&mut self.path))?;
            if base == 0 {
                self.top_len = self.path.len();
            }
            if first && &self.path[key_start..] == "_type" {
                // A histogram or a media value, not a number.
                self.path.truncate(base);
                return c.skip_rest_of_object();
            }
            first = false;
            c.ws();
            if c.peek() != Some(b':') {
                return Err(BadLine);
            }
            c.i += 1;
            c.ws();
            self.value(c, depth, emit)?;
        }
    }

    fn value(
        &mut self,
        c: &mut Cursor<'_>,
        depth: usize,
        emit: &mut impl FnMut(&str, usize, f64),
    ) -> Result<(), BadLine> {
        match c.peek().ok_or(BadLine)? {
            b'{' if depth < MAX_DEPTH => {
                let end = self.path.len();
                self.object(c, depth + 1, emit)?;
                self.path.truncate(end);
                Ok(())
            }
            b'{' | b'[' => c.skip_value(),
            b'"' => c.string(None),
            b't' => c.word("true"),
            b'f' => c.word("false"),
            b'n' => c.word("null"),
            b'N' => {
                c.word("NaN")?;
                emit(&self.path, self.top_len, f64::NAN);
                Ok(())
            }
            b'I' => {
                c.word("Infinity")?;
                emit(&self.path, self.top_len, f64::INFINITY);
                Ok(())
            }
            b'-' if c.b.get(c.i + 1) == Some(&b'I') => {
                c.i += 1;
                c.word("Infinity")?;
                emit(&self.path, self.top_len, f64::NEG_INFINITY);
                Ok(())
            }
            _ => {
                let v = c.number()?;
                emit(&self.path, self.top_len, v);
                Ok(())
            }
        }
    }
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn word(&mut self, w: &str) -> Result<(), BadLine> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(())
        } else {
            Err(BadLine)
        }
    }

    fn number(&mut self) -> Result<f64, BadLine> {
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.i += 1;
        }
        self.s[start..self.i].parse().map_err(|_| BadLine)
    }

    /// Reads a string (on its opening quote), appending its text to `out`.
    fn string(&mut self, mut out: Option<&mut String>) -> Result<(), BadLine> {
        if self.peek() != Some(b'"') {
            return Err(BadLine);
        }
        self.i += 1;
        loop {
            let start = self.i;
            while !matches!(self.peek(), Some(b'"' | b'\\') | None) {
                self.i += 1;
            }
            if let Some(o) = out.as_deref_mut() {
                o.push_str(&self.s[start..self.i]);
            }
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let c = self.escape()?;
                    if let Some(o) = out.as_deref_mut() {
                        o.push(c);
                    }
                }
                _ => return Err(BadLine),
            }
        }
    }

    /// Reads one escape sequence (on its backslash).
    fn escape(&mut self) -> Result<char, BadLine> {
        let c = *self.b.get(self.i + 1).ok_or(BadLine)?;
        self.i += 2;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) && self.b[self.i..].starts_with(b"\\u") {
                    self.i += 2;
                    let lo = self.hex4()?;
                    let code = 0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                    char::from_u32(code).unwrap_or('\u{FFFD}')
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            _ => return Err(BadLine),
        })
    }

    fn hex4(&mut self) -> Result<u32, BadLine> {
        let digits = self.s.get(self.i..self.i + 4).ok_or(BadLine)?;
        self.i += 4;
        u32::from_str_radix(digits, 16).map_err(|_| BadLine)
    }

    /// Skips an object or list (on its opening bracket), strings included.
    fn skip_value(&mut self) -> Result<(), BadLine> {
        self.i += 1;
        self.skip_rest_of_object()
    }

    /// Skips what is left of an object or list whose opening bracket was read.
    fn skip_rest_of_object(&mut self) -> Result<(), BadLine> {
        let mut depth = 1usize;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.string(None)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        Err(BadLine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> Result<Vec<(String, f64)>, BadLine> {
        let mut out = Vec::new();
        LineScanner::default().scan(line, &mut |k, _, v| out.push((k.to_owned(), v)))?;
        Ok(out)
    }

    #[test]
    fn numbers_nested_keys_and_python_tokens() {
        let got = scan(
            r#"{"a":1.5,"b/c":-2e3,"val":{"loss":0.25,"deep":{"x":3}},"n":NaN,"p":Infinity,"m":-Infinity,"_step":7}"#,
        )
        .unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["a", "b/c", "val.loss", "val.deep.x", "n", "p", "m", "_step"]
        );
        assert_eq!(got[1].1, -2000.0);
        assert!(got[4].1.is_nan());
        assert_eq!(got[5].1, f64::INFINITY);
        assert_eq!(got[6].1, f64::NEG_INFINITY);
        assert_eq!(got[7].1, 7.0);
    }

    #[test]
    fn other_values_are_skipped() {
        let got = scan(concat!(
            r#"{"s":"x\"}{","t":true,"f":false,"z":null,"l":[1,{"a":[2]}],"#,
            r#""h":{"_type":"histogram","bins":[0,1],"values":[3]},"#,
            r#""img":{"_type":"image-file","path":"media/a}.png","size":7,"ncols":2},"k\u00e9\n":4}"#
        ))
        .unwrap();
        assert_eq!(got, vec![("ké\n".to_owned(), 4.0)]);
    }

    #[test]
    fn broken_lines_are_refused() {
        for bad in [
            "",
            "[1]",
            "{\"a\":1",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{\"a\":tru}",
            "{\"a\":1.2.3}",
            "{\"a\":\"open}",
        ] {
            assert_eq!(scan(bad), Err(BadLine), "{bad:?}");
        }
        assert_eq!(scan("{}").unwrap(), vec![]);
    }
}
