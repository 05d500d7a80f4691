//! Hook output, line by line, with every secret value replaced by `***`.
//!
//! Output is cut into lines first ([`LineSplitter`], fed whatever the pipe
//! returned), and only complete lines are redacted, so a secret split
//! across two reads is still found. A line longer than the cap keeps its
//! first [`MAX_LINE`] bytes plus enough look-ahead to see any secret that
//! starts before the cut whole; the rest of the line is dropped. A secret
//! containing newlines is also redacted line by line (each of its non-empty
//! lines is a pattern of its own). Every byte covered by any occurrence of
//! any pattern — overlapping ones included — is hidden, so no fragment of a
//! secret survives; the cost is over-redaction when a secret is short or
//! common.

use zeroize::Zeroizing;

/// Longest line passed on, in bytes (before redaction).
pub const MAX_LINE: usize = 8 * 1024;
/// What a hidden run of bytes becomes.
pub const MASK: &str = "***";
/// Appended to a line that was cut.
const CUT: &str = " [line truncated]";

/// The patterns to hide.
pub(crate) struct Redactor {
    patterns: Vec<Zeroizing<Vec<u8>>>,
    longest: usize,
}

impl Redactor {
    /// A redactor for these secret values.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut add = |p: &[u8]| {
            if !p.is_empty() && !patterns.iter().any(|q| q.as_slice() == p) {
                patterns.push(Zeroizing::new(p.to_vec()));
            }
        };
        for s in secrets {
            add(s.as_bytes());
            if s.contains('\n') {
                for line in s.split('\n') {
                    add(line.trim_end_matches('\r').as_bytes());
                }
            }
        }
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        Redactor { patterns, longest }
    }

    /// How many bytes past [`MAX_LINE`] a splitter must keep.
    pub(crate) fn lookahead(&self) -> usize {
        self.longest
    }

    /// Redacts one line (without its newline). `truncated`: the splitter
    /// already dropped the line's tail.
    pub(crate) fn line(&self, raw: &[u8], truncated: bool) -> String {
        let mut covered = vec![false; raw.len()];
        for p in &self.patterns {
            let p = p.as_slice();
            if p.len() > raw.len() {
                continue;
            }
            let mut start = 0;
            while let Some(i) = find(&raw[start..], p) {
                let at = start + i;
                covered[at..at + p.len()].iter_mut().for_each(|c| *c = true);
                start = at + 1;
                if start + p.len() > raw.len() {
                    break;
                }
            }
        }
        // Cut at MAX_LINE, but never inside a hidden run: extend to its end
        // (the look-ahead guarantees the run is whole in `raw`).
        let mut cut = raw.len().min(MAX_LINE);
        while cut < raw.len() && cut > 0 && covered[cut - 1] && covered[cut] {
            cut += 1;
        }
        let shortened = truncated || cut < raw.len();
        let mut out: Vec<u8> = Vec::with_capacity(cut + CUT.len());
        let mut i = 0;
        while i < cut {
            if covered[i] {
                out.extend_from_slice(MASK.as_bytes());
                while i < cut && covered[i] {
                    i += 1;
                }
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        let mut line = String::from_utf8_lossy(&out).into_owned();
        if shortened {
            line.push_str(CUT);
        }
        line
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Cuts a byte stream into lines, keeping at most `MAX_LINE + lookahead`
/// bytes of each.
pub(crate) struct LineSplitter {
    buf: Zeroizing<Vec<u8>>,
    keep: usize,
    dropping: bool,
}

impl LineSplitter {
    pub(crate) fn new(lookahead: usize) -> Self {
        LineSplitter {
            buf: Zeroizing::new(Vec::new()),
            keep: MAX_LINE + lookahead,
            dropping: false,
        }
    }

    /// Feeds bytes; calls `emit(line, truncated)` for every complete line.
    pub(crate) fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.push(&data[..nl]);
                    let line = strip_cr(&self.buf);
                    emit(line, self.dropping);
                    self.buf.clear();
                    self.dropping = false;
                    data = &data[nl + 1..];
                }
                None => {
                    self.push(data);
                    data = &[];
                }
            }
        }
    }

    /// At end of stream: the last line, if it had no newline.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        if !self.buf.is_empty() || self.dropping {
            let line = strip_cr(&self.buf);
            emit(line, self.dropping);
            self.buf.clear();
            self.dropping = false;
        }
    }

    fn push(&mut self, part: &[u8]) {
        let room = self.keep.saturating_sub(self.buf.len());
        if part.len() > room {
            self.dropping = true;
        }
        self.buf.extend_from_slice(&part[..part.len().min(room)]);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &Redactor, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(r.lookahead());
        let mut out = Vec::new();
        let mut emit = |l: &[u8], t: bool| out.push(r.line(l, t));
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn secret_split_across_reads_is_hidden() {
        let r = Redactor::new(["hunter2", ""]);
        let out = lines(
            &r,
            &[b"pass=hun", b"ter2 ok\nnext hunter", b"2\r\n", b"tail"],
        );
        assert_eq!(out, ["pass=*** ok", "next ***", "tail"]);
    }

    #[test]
    fn overlapping_and_multiline_secrets_leave_no_fragment() {
        let r = Redactor::new(["abcd", "cdef", "line1\nline2"]);
        assert_eq!(r.line(b"xabcdefx", false), "x***x");
        let out = lines(&r, &[b"key: line1\nline2 end\n"]);
        assert_eq!(out, ["key: ***", "*** end"]);
    }

    #[test]
    fn long_lines_are_cut_without_leaking_a_prefix() {
        let secret = "S".repeat(100);
        let r = Redactor::new([secret.as_str()]);
        // The secret straddles the cut at MAX_LINE.
        let mut line = "a".repeat(MAX_LINE - 10).into_bytes();
        line.extend_from_slice(secret.as_bytes());
        line.extend_from_slice(&[b'b'; 50_000]);
        line.push(b'\n');
        let out = lines(&r, &[&line[..5000], &line[5000..]]);
        assert_eq!(out.len(), 1);
        assert!(!out[0].contains('S'), "no fragment of the secret");
        assert!(
            out[0].ends_with(&format!("***{CUT}")),
            "{}",
            &out[0][MAX_LINE - 20..]
        );
        assert!(out[0].len() < MAX_LINE + 100);
    }

    #[test]
    fn no_secrets_passes_lines_through() {
        let r = Redactor::new(std::iter::empty());
        assert_eq!(lines(&r, &[b"a\n\nb"]), ["a", "", "b"]);
    }
}
