//! The HPACK index space (RFC 7541 §2.3): the static table (Appendix A) at
//! indexes 1..=61 and the dynamic table after it, newest entry first, with its
//! size accounting and eviction (§4).

use std::collections::VecDeque;

/// RFC 7541 Appendix A: the static table, index 1 first.
pub(super) const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Bytes an entry counts for beyond its name and value (RFC 7541 §4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The static table followed by one side's dynamic table.
#[derive(Debug)]
pub(super) struct Table {
    /// Dynamic entries as (name, value), newest first: index 62 is `dynamic[0]`.
    dynamic: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Sum of the entries' sizes (name + value + 32 each).
    size: usize,
    /// The encoder's current maximum, set by dynamic table size updates.
    max_size: usize,
}

impl Table {
    pub(super) fn new(max_size: usize) -> Self {
        Table {
            dynamic: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The (name, value) at `index`, or `None` for 0 or past the end.
    pub(super) fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        if index == 0 {
            return None;
        }
        if let Some((name, value)) = STATIC.get(index - 1) {
            return Some((name.as_bytes(), value.as_bytes()));
        }
        let (name, value) = self.dynamic.get(index - 1 - STATIC.len())?;
        Some((name, value))
    }

    /// Adds an entry, evicting the oldest ones to make room. An entry bigger than
    /// the whole table empties it and is not added (RFC 7541 §4.4).
    pub(super) fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let cost = name.len() + value.len() + ENTRY_OVERHEAD;
        if cost > self.max_size {
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - cost);
        self.dynamic.push_front((name, value));
        self.size += cost;
    }

    /// Applies a dynamic table size update, evicting what no longer fits (§4.3).
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some((name, value)) = self.dynamic.pop_back() else {
                break;
            };
            self.size -= name.len() + value.len() + ENTRY_OVERHEAD;
        }
    }

    /// The dynamic entries, newest first, and their total size.
    #[cfg(test)]
    pub(super) fn dynamic(&self) -> (Vec<(String, String)>, usize) {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let entries = self
            .dynamic
            .iter()
            .map(|(n, v)| (text(n), text(v)))
            .collect();
        (entries, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn static_indexes_are_the_rfc_ones() {
        let table = Table::new(4096);
        assert_eq!(table.get(1), Some((&b":authority"[..], &b""[..])));
        assert_eq!(
            table.get(16),
            Some((&b"accept-encoding"[..], &b"gzip, deflate"[..]))
        );
        assert_eq!(table.get(61), Some((&b"www-authenticate"[..], &b""[..])));
        assert_eq!(table.get(0), None);
        assert_eq!(table.get(62), None);
    }

    #[test]
    fn dynamic_entries_follow_the_static_ones_newest_first() {
        let mut table = Table::new(4096);
        table.insert(b"a".to_vec(), b"1".to_vec());
        table.insert(b"b".to_vec(), b"2".to_vec());
        assert_eq!(table.get(62), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.get(63), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(table.get(64), None);
        assert_eq!(table.dynamic().1, 2 * 34);
    }

    #[test]
    fn insert_evicts_oldest_until_it_fits() {
        let mut table = Table::new(3 * 34);
        for name in ["a", "b", "c", "d"] {
            table.insert(name.as_bytes().to_vec(), b"1".to_vec());
        }
        let want = vec![entry("d", "1"), entry("c", "1"), entry("b", "1")];
        assert_eq!(table.dynamic(), (want, 3 * 34));
    }

    #[test]
    fn entry_bigger_than_the_table_empties_it() {
        let mut table = Table::new(40);
        table.insert(b"a".to_vec(), b"1".to_vec());
        table.insert(b"name".to_vec(), b"value".to_vec());
        assert_eq!(table.dynamic(), (Vec::new(), 0));
    }

    #[test]
    fn size_update_evicts_and_zero_clears() {
        let mut table = Table::new(4096);
        table.insert(b"a".to_vec(), b"1".to_vec());
        table.insert(b"b".to_vec(), b"2".to_vec());
        table.set_max_size(40);
        assert_eq!(table.dynamic(), (vec![entry("b", "2")], 34));
        table.set_max_size(0);
        assert_eq!(table.dynamic(), (Vec::new(), 0));
    }
}
