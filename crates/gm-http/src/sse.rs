//! A lenient parser for server-sent events as model APIs send them.
//!
//! It accepts `data:` with or without a space, `\n`, `\r\n` and `\r` line ends, comments (`:`), and
//! ignores `event:`, `id:` and `retry:` fields. Several `data:` lines of one event are joined with `\n`.
//! Bytes may arrive split anywhere, even inside a UTF-8 character or a CRLF pair. A line longer than the
//! cap is an error rather than an unbounded buffer.

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// The `data` of an event.
    Data(String),
    /// `data: [DONE]`: the end of the stream.
    Done,
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line or event grew past the cap without ending.
    #[error("a server-sent event is longer than the {0}-byte cap; the server is not sending a valid event stream")]
    TooLong(usize),
    /// An event's data was not UTF-8.
    #[error("a server-sent event is not valid UTF-8")]
    NotUtf8,
}

/// An incremental SSE parser. Feed it bytes as they arrive; it returns the events completed so far.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    last_was_cr: bool,
    max_len: usize,
    done: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    /// The default cap on one event: 8 MiB.
    pub const DEFAULT_MAX_EVENT: usize = 8 << 20;

    /// A parser that refuses lines and events longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { line: Vec::new(), data: Vec::new(), has_data: false, last_was_cr: false, max_len, done: false }
    }

    /// Whether `[DONE]` has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds bytes; completed events are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.last_was_cr && rest[0] == b'\n' {
                // The `\n` of a CRLF split across feeds: the line already ended at the `\r`.
                self.last_was_cr = false;
                rest = &rest[1..];
                continue;
            }
            self.last_was_cr = false;
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.push_line_bytes(&rest[..i])?;
                    let was_cr = rest[i] == b'\r';
                    rest = &rest[i + 1..];
                    if was_cr {
                        if rest.first() == Some(&b'\n') {
                            rest = &rest[1..];
                        } else if rest.is_empty() {
                            self.last_was_cr = true;
                        }
                    }
                    self.end_line(out)?;
                }
                None => {
                    self.push_line_bytes(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// Ends the input: an event still being built is dispatched (some servers omit the final blank line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out)
    }

    fn push_line_bytes(&mut self, b: &[u8]) -> Result<(), SseError> {
        if self.line.len() + b.len() > self.max_len {
            return Err(SseError::TooLong(self.max_len));
        }
        self.line.extend_from_slice(b);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.data.len() + value.len() + 1 > self.max_len {
                return Err(SseError::TooLong(self.max_len));
            }
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event`, `id`, `retry` and unknown fields carry nothing a model API needs.
        self.line = line;
        self.line.clear();
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.has_data {
            return Ok(());
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        let text = String::from_utf8(data).map_err(|_| SseError::NotUtf8)?;
        if text.trim() == "[DONE]" {
            self.done = true;
            out.push(SseEvent::Done);
        } else {
            out.push(SseEvent::Data(text));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn lenient_forms() {
        let s = b": comment\r\nevent: message\r\nid: 1\r\nretry: 10\r\ndata:{\"a\":1}\r\n\r\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        assert_eq!(
            parse_all(&[s]),
            vec![SseEvent::Data("{\"a\":1}".into()), SseEvent::Data("x\ny".into()), SseEvent::Done]
        );
    }

    #[test]
    fn missing_final_blank_line_still_dispatches() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![SseEvent::Done]);
    }

    #[test]
    fn overlong_line_is_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(p.feed(&[b'a'; 17], &mut out), Err(SseError::TooLong(16)));
    }

    fn sample_stream() -> Vec<u8> {
        let mut s = String::new();
        s.push_str(": keep-alive\r\n\r\n");
        for i in 0..5 {
            s.push_str(&format!(
                "event: chunk\r\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\"héllo {i} ✓\"}}}}]}}\r\n\r\n"
            ));
        }
        s.push_str("data:{\"usage\":{}}\n\n");
        s.push_str("data: [DONE]\r\n\r\n");
        s.into_bytes()
    }

    /// One generated event: its data lines, whether a comment and other fields precede it, the line ending.
    fn event_strategy() -> impl Strategy<Value = (Vec<String>, bool, bool)> {
        let line = "[a-zA-Z0-9 {}\":,.éü✓-]{0,24}".prop_filter("no line breaks", |l: &String| !l.contains('\n'));
        (proptest::collection::vec(line, 1..4), any::<bool>(), any::<bool>())
    }

    /// A valid stream of `events` and the events a parser must yield for it, whatever its chunking.
    fn build_stream(events: &[(Vec<String>, bool, bool)]) -> (Vec<u8>, Vec<SseEvent>) {
        let mut s = String::new();
        let mut expected = Vec::new();
        for (lines, extras, crlf) in events {
            let eol = if *crlf { "\r\n" } else { "\n" };
            if *extras {
                s.push_str(&format!(": keep-alive{eol}event: chunk{eol}id: 7{eol}retry: 100{eol}"));
            }
            for (i, l) in lines.iter().enumerate() {
                // `data:` with and without the space the spec allows.
                let sep = if i % 2 == 0 { " " } else { "" };
                s.push_str(&format!("data:{sep}{}{eol}", l.trim_start()));
            }
            s.push_str(eol);
            // The parser drops one space after `data:`; a value that starts with more keeps the rest, so
            // generated values start with none.
            let text: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
            expected.push(SseEvent::Data(text.join("\n")));
        }
        s.push_str("data: [DONE]\n\n");
        expected.push(SseEvent::Done);
        (s.into_bytes(), expected)
    }

    fn split(s: &[u8], cuts: Vec<usize>) -> Vec<&[u8]> {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut prev = 0;
        for c in cuts {
            pieces.push(&s[prev..c]);
            prev = c;
        }
        pieces.push(&s[prev..]);
        pieces
    }

    proptest! {
        #[test]
        fn any_generated_stream_split_anywhere_yields_its_events(
            events in proptest::collection::vec(event_strategy(), 0..8),
            cuts in proptest::collection::vec(0usize..4000, 0..40),
        ) {
            let (s, expected) = build_stream(&events);
            prop_assert_eq!(parse_all(&split(&s, cuts)), expected);
        }

        #[test]
        fn any_split_yields_the_same_events(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
            let s = sample_stream();
            let whole = parse_all(&[&s]);
            prop_assert_eq!(parse_all(&split(&s, cuts)), whole);
        }
    }
}
