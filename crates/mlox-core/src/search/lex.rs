//! Character-level scanners for the pieces of a filter. They reproduce the lexical rules of the
//! SQL tokenizer MLflow runs filters through, because those rules decide where a quoted string
//! ends, and clients rely on that boundary (a doubled quote or a backslash-quote stays inside).

/// Characters of a bare word (`\w` in Python's Unicode regexes).
pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// For every position inside a quoted span, where the span opened before it would end.
///
/// MLflow's tokenizer matches quoted spans with a backtracking regex of the shape
/// `q( qq | \q | [^q] )* q`. When the greedy reading runs off the end of the input, the engine
/// backtracks and closes the span at an earlier quote, so the end of a span can depend on text
/// far to its right. The outcome of that search from a given position does not depend on where
/// the span opened, which lets one right-to-left pass answer every span of the input in linear
/// time, whatever the input.
pub(super) struct QuotedSpans {
    quote: u8,
    /// `ends[pos]`: exclusive end of the span when its body continues at `pos`.
    ends: Vec<Option<usize>>,
}

impl QuotedSpans {
    pub(super) fn new(input: &str, quote: u8, backslash_escapes_quote: bool) -> QuotedSpans {
        let bytes = input.as_bytes();
        let len = bytes.len();
        let mut ends = vec![None; len + 2];
        for pos in (0..len).rev() {
            let next = bytes.get(pos + 1).copied();
            ends[pos] = if bytes[pos] == quote {
                if next == Some(quote) {
                    // A doubled quote continues the span unless nothing after it can close.
                    ends[pos + 2].or(Some(pos + 1))
                } else {
                    Some(pos + 1)
                }
            } else if backslash_escapes_quote && bytes[pos] == b'\\' && next == Some(quote) {
                ends[pos + 2].or(ends[pos + 1])
            } else {
                ends[pos + 1]
            };
        }
        QuotedSpans { quote, ends }
    }

    /// Exclusive end of the span whose opening quote is at `start`, if it closes at all.
    pub(super) fn end_of_span_at(&self, start: usize) -> Option<usize> {
        self.ends.get(start + 1).copied().flatten()
    }

    pub(super) fn quote(&self) -> u8 {
        self.quote
    }
}

/// Whether `body` between two `quote`s reads back as exactly itself wherever the literal stands.
/// Only a literal that closes on the first reading qualifies: one that needs backtracking to
/// close (`'x\'`) would close at the next quote further right instead, whenever there is one.
pub(super) fn literal_reads_back(body: &str, quote: u8, backslash_escapes_quote: bool) -> bool {
    // The body followed by its closing quote; the reading must close on that very quote.
    let mut literal = body.as_bytes().to_vec();
    literal.push(quote);
    let mut pos = 0;
    while pos < literal.len() {
        let next = literal.get(pos + 1).copied();
        if literal[pos] == quote {
            if next != Some(quote) {
                return pos == body.len();
            }
            pos += 2;
        } else if backslash_escapes_quote && literal[pos] == b'\\' && next == Some(quote) {
            pos += 2;
        } else {
            pos += 1;
        }
    }
    false
}

/// A number as MLflow's tokenizer reads one: optional minus, digits with an optional fraction
/// (`5.` and `.5` included), an optional exponent. Returns the end of the number, or `None` when
/// the text at `start` is not a number (including digits that run into a word, like `1abc`).
pub(super) fn number_end(input: &str, start: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let integer_digits = digits(pos);
    pos += integer_digits;
    let mut fraction_digits = 0;
    if bytes.get(pos) == Some(&b'.') {
        fraction_digits = digits(pos + 1);
        if integer_digits == 0 && fraction_digits == 0 {
            return None;
        }
        pos += 1 + fraction_digits;
    }
    if integer_digits == 0 && fraction_digits == 0 {
        return None;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        let mut exponent = pos + 1;
        if matches!(bytes.get(exponent), Some(b'-' | b'+')) {
            exponent += 1;
        }
        let exponent_digits = digits(exponent);
        if exponent_digits > 0 {
            pos = exponent + exponent_digits;
        }
    }
    match input[pos..].chars().next() {
        Some(c) if is_word_char(c) => None,
        _ => Some(pos),
    }
}

/// End of a run of word characters starting at `start` (equal to `start` if there is none).
pub(super) fn word_end(input: &str, start: usize) -> usize {
    input[start..]
        .char_indices()
        .find(|&(_, c)| !is_word_char(c))
        .map_or(input.len(), |(offset, _)| start + offset)
}

/// A string literal inside a parenthesised list. MLflow hands the whole list to Python's literal
/// evaluator, so list items follow Python's rules rather than the tokenizer's: backslash escapes,
/// no line breaks, and `''` is two adjacent literals. Returns the unescaped text and the end.
pub(super) fn python_string_literal(input: &str, start: usize) -> Option<(String, usize)> {
    let quote = input[start..].chars().next()?;
    let mut text = String::new();
    let mut chars = input[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            _ if c == quote => return Some((text, start + 1 + offset + 1)),
            '\n' | '\r' => return None,
            '\\' => {
                let (_, escaped) = chars.next()?;
                match escaped {
                    '\\' | '\'' | '"' => text.push(escaped),
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    '\n' => {}
                    other => {
                        // Python keeps unknown escapes as written.
                        text.push('\\');
                        text.push(other);
                    }
                }
            }
            _ => text.push(c),
        }
    }
    None
}

/// Renders `text` as a Python string literal that [`python_string_literal`] reads back.
pub(super) fn render_python_string_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('\'');
    for c in text.chars() {
        match c {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            other => literal.push(other),
        }
    }
    literal.push('\'');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(input: &str) -> Option<&str> {
        let quote = input.as_bytes()[0];
        let spans = QuotedSpans::new(input, quote, quote != b'`');
        spans.end_of_span_at(0).map(|end| &input[..end])
    }

    #[test]
    fn quoted_spans_end_where_mlflow_tokenizer_ends_them() {
        assert_eq!(span("'abc' AND x"), Some("'abc'"));
        assert_eq!(span("'it''s' AND x"), Some("'it''s'"));
        assert_eq!(span(r"'it\'s' AND x"), Some(r"'it\'s'"));
        // Backtracking: the backslash-quote is the only way to close.
        assert_eq!(span(r"'x\'"), Some(r"'x\'"));
        assert_eq!(span(r"'x\' AND y = 'z'"), Some(r"'x\' AND y = '"));
        assert_eq!(span("'a'' AND"), Some("'a'"));
        assert_eq!(span("'never closed"), None);
        assert_eq!(span("`a``b` = 1"), Some("`a``b`"));
        assert_eq!(span("\"x\" y"), Some("\"x\""));
    }

    #[test]
    fn only_literals_that_close_on_first_reading_read_back() {
        assert!(literal_reads_back("plain", b'\'', true));
        assert!(literal_reads_back("it''s", b'\'', true));
        assert!(literal_reads_back(r"it\'s", b'\'', true));
        assert!(!literal_reads_back("it's", b'\'', true));
        assert!(literal_reads_back("it's", b'"', true));
        // Closes only by backtracking, so a later quote would steal the end.
        assert!(!literal_reads_back(r"ends\", b'\'', true));
        assert!(!literal_reads_back("ends'", b'\'', true));
    }

    #[test]
    fn numbers_follow_the_tokenizer() {
        fn read(s: &str) -> Option<&str> {
            number_end(s, 0).map(|end| &s[..end])
        }
        assert_eq!(read("1 "), Some("1"));
        assert_eq!(read("-1.5e3)"), Some("-1.5e3"));
        assert_eq!(read("5."), Some("5."));
        assert_eq!(read(".5"), Some(".5"));
        assert_eq!(read("1E-5"), Some("1E-5"));
        assert_eq!(read("1abc"), None);
        assert_eq!(read("-"), None);
        assert_eq!(read("."), None);
        assert_eq!(read("-.5"), Some("-.5"));
    }

    #[test]
    fn list_items_are_python_literals() {
        assert_eq!(
            python_string_literal(r"'it\'s'", 0),
            Some(("it's".into(), 7))
        );
        assert_eq!(
            python_string_literal(r#""a\\""#, 0),
            Some(("a\\".into(), 5))
        );
        assert_eq!(python_string_literal("'a\nb'", 0), None);
        for text in ["", "plain", "it's", "back\\slash\\", "new\nline", "\"q\""] {
            let literal = render_python_string_literal(text);
            assert_eq!(
                python_string_literal(&literal, 0),
                Some((text.to_string(), literal.len()))
            );
        }
    }
}
