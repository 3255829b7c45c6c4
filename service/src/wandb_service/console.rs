//! Console output: the SDK sends what the script printed in fragments (a line
//! may come in several records, a record may hold several lines); this puts the
//! lines back together for output.log, and keeps the last few for a crash report.

use std::collections::VecDeque;

/// Lines kept for the report of a run whose connection closed without an exit.
pub const RECENT_LINES: usize = 20;

#[derive(Default)]
pub struct Console {
    partial: String,
    /// A '\r' was the last character: the next one says whether it ended the line
    /// (`\r\n`) or started to overwrite it (a progress bar).
    carriage: bool,
    recent: VecDeque<String>,
}

impl Console {
    /// Takes a fragment; returns the lines it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        let mut done = Vec::new();
        for c in text.chars() {
            if self.carriage && c != '\n' {
                self.partial.clear();
            }
            self.carriage = false;
            match c {
                '\n' => done.push(std::mem::take(&mut self.partial)),
                '\r' => self.carriage = true,
                c => self.partial.push(c),
            }
        }
        for line in &done {
            self.remember(line);
        }
        done
    }

    /// The unfinished last line, if any (the script ended without a newline).
    pub fn finish(&mut self) -> Option<String> {
        self.carriage = false;
        if self.partial.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.partial);
        self.remember(&line);
        Some(line)
    }

    fn remember(&mut self, line: &str) {
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_owned());
    }

    /// The last lines printed, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &str> {
        self.recent.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_become_lines_and_carriage_returns_overwrite() {
        let mut c = Console::default();
        assert!(c.push("Traceback ").is_empty());
        assert_eq!(
            c.push("(most recent)\n  File"),
            vec!["Traceback (most recent)"]
        );
        assert_eq!(c.push(" x\n"), vec!["  File x"]);
        assert!(c.push("10%\r50%\r").is_empty());
        assert_eq!(c.push("\n"), vec!["50%"]);
        assert_eq!(c.push("a\r\nb"), vec!["a"]);
        assert_eq!(c.finish().as_deref(), Some("b"));
        assert_eq!(c.finish(), None);
        let recent: Vec<&str> = c.recent().collect();
        assert_eq!(
            recent,
            ["Traceback (most recent)", "  File x", "50%", "a", "b"]
        );
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let mut c = Console::default();
        for i in 0..30 {
            c.push(&format!("{i}\n"));
        }
        assert_eq!(c.recent().count(), RECENT_LINES);
        assert_eq!(c.recent().next(), Some("10"));
    }
}
