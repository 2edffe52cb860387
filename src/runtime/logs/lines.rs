//! Cutting a stream of output into whole lines, with a bound: a line longer
//! than [`MAX_LINE`] is passed on in pieces as it arrives, each piece but the
//! last ending with a backslash before its newline (a continued line, as in a
//! shell script), so memory stays bounded and the log stays current.

/// The longest piece of a line kept before it is passed on.
pub const MAX_LINE: usize = 64 * 1024;
/// What ends a piece of a line that goes on.
const CONTINUED: &[u8] = b"\\\n";

/// The line in progress of one stream.
#[derive(Debug, Default)]
pub struct Lines {
    rest: Vec<u8>,
}

impl Lines {
    /// Take `chunk`; what is ready to write: whole lines and finished pieces.
    /// Usually a part of `chunk` itself; `scratch` when lines had to be
    /// joined or cut.
    pub fn feed<'a>(&mut self, chunk: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let end = memchr::memrchr(b'\n', chunk).map_or(0, |i| i + 1);
        let whole = &chunk[..end];
        if self.rest.is_empty() && fits(whole) && chunk.len() - end < MAX_LINE {
            self.rest.extend_from_slice(&chunk[end..]);
            return whole;
        }
        scratch.clear();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', whole) {
            self.rest.extend_from_slice(&whole[start..=nl]);
            cut(&self.rest, scratch, true);
            self.rest.clear();
            start = nl + 1;
        }
        self.rest.extend_from_slice(&chunk[end..]);
        let kept = cut(&self.rest, scratch, false);
        self.rest.drain(..self.rest.len() - kept);
        scratch
    }

    /// The stream ended: its last line, completed with a newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.rest.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.rest);
        line.push(b'\n');
        Some(line)
    }
}

/// Whether every line of `lines` (whole lines) is at most [`MAX_LINE`]
/// bytes long, newline included. Looking at each newline costs a call per
/// line, a quarter of the log thread's time with short lines; instead, when
/// every block of half the limit holds a newline, no run without one can
/// reach the limit (such a run would cover a whole block). Only a block
/// without a newline calls for the line-by-line look.
fn fits(lines: &[u8]) -> bool {
    lines
        .chunks(MAX_LINE / 2)
        .all(|block| memchr::memchr(b'\n', block).is_some())
        || each_fits(lines)
}

/// [`fits`], line by line.
fn each_fits(lines: &[u8]) -> bool {
    let mut start = 0;
    memchr::memchr_iter(b'\n', lines).all(|nl| {
        let ok = nl + 1 - start <= MAX_LINE;
        start = nl + 1;
        ok
    })
}

/// Append `line` to `out` in pieces of at most [`MAX_LINE`] bytes, each but
/// the last marked as continued. A `whole` line ends with its newline and is
/// written to its end; otherwise the last piece (shorter than the limit) is
/// kept back: how many bytes of `line` were kept.
fn cut(line: &[u8], out: &mut Vec<u8>, whole: bool) -> usize {
    let mut rest = line;
    while rest.len() > MAX_LINE || (!whole && rest.len() == MAX_LINE) {
        out.extend_from_slice(&rest[..MAX_LINE]);
        out.extend_from_slice(CONTINUED);
        rest = &rest[MAX_LINE..];
    }
    if whole {
        out.extend_from_slice(rest);
        0
    } else {
        rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> (Vec<u8>, Lines) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(lines.feed(chunk, &mut scratch));
        }
        (out, lines)
    }

    #[test]
    fn whole_lines_pass_and_a_partial_one_waits_for_its_end() {
        let (out, mut lines) = feed_all(&[b"a\nb", b"c\nd"]);
        assert_eq!(out, b"a\nbc\n");
        assert_eq!(lines.finish(), Some(b"d\n".to_vec()));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn a_long_line_goes_out_in_marked_pieces_as_it_arrives() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let (out, mut lines) = feed_all(&[&long[..MAX_LINE + 5], &long[MAX_LINE + 5..]]);
        let piece = [vec![b'x'; MAX_LINE], CONTINUED.to_vec()].concat();
        assert_eq!(
            out,
            [piece.clone(), piece].concat(),
            "two pieces out, 10 bytes held"
        );
        assert_eq!(lines.rest.len(), 10);
        assert_eq!(
            lines.finish(),
            Some([vec![b'x'; 10], b"\n".to_vec()].concat())
        );
    }

    #[test]
    fn a_long_line_inside_a_chunk_is_cut_and_the_lines_around_it_kept() {
        let mut chunk = b"before\n".to_vec();
        chunk.extend(vec![b'y'; MAX_LINE + 1]);
        chunk.extend(b"\nafter\nrest");
        let (out, mut lines) = feed_all(&[&chunk]);
        let expected = [
            b"before\n".to_vec(),
            vec![b'y'; MAX_LINE],
            CONTINUED.to_vec(),
            b"y\nafter\n".to_vec(),
        ]
        .concat();
        assert_eq!(out, expected);
        assert_eq!(lines.finish(), Some(b"rest\n".to_vec()));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_not_cut() {
        let mut line = vec![b'z'; MAX_LINE - 1];
        line.push(b'\n');
        let (out, _) = feed_all(&[&line]);
        assert_eq!(out, line);
    }

    #[test]
    fn a_long_line_is_seen_wherever_it_starts() {
        // A newline in each block of the limit's size, and still a line over it.
        let lines = [b"\n".as_slice(), &vec![b'x'; MAX_LINE], b"\n"].concat();
        assert!(!fits(&lines));
        let at_the_limit = [b"\n".as_slice(), &vec![b'x'; MAX_LINE - 1], b"\n"].concat();
        assert!(fits(&at_the_limit));
    }

    proptest::proptest! {
        #[test]
        fn fits_is_the_line_by_line_answer(
            lengths in proptest::collection::vec(
                proptest::prop_oneof![0..200usize, MAX_LINE - 2..MAX_LINE + 2, 0..MAX_LINE * 2],
                1..12,
            )
        ) {
            let lines: Vec<u8> = lengths
                .iter()
                .flat_map(|&n| std::iter::repeat_n(b'x', n).chain([b'\n']))
                .collect();
            proptest::prop_assert_eq!(fits(&lines), each_fits(&lines));
        }
    }

    #[test]
    fn memory_stays_bounded_for_an_endless_line() {
        let mut lines = Lines::default();
        let mut scratch = Vec::new();
        let chunk = vec![b'q'; 100_000];
        let mut total = 0;
        for _ in 0..100 {
            total += lines.feed(&chunk, &mut scratch).len();
            assert!(lines.rest.len() < MAX_LINE);
        }
        let pieces = total / (MAX_LINE + CONTINUED.len());
        assert_eq!(pieces * MAX_LINE + lines.rest.len(), 10_000_000);
    }
}
