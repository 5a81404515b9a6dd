//! The entity-independent shape of filters and order_by clauses: keys, comparators and values as
//! written, before any entity decides what they mean. Keeping the text as written lets the
//! entity rules quote the user's own spelling back in their error messages, as MLflow does.

use super::Op;
use super::lex::{QuotedSpans, is_word_char, number_end, python_string_literal, word_end};

/// A key as written: one or more dot-separated parts, each a word, a back-quoted or a
/// double-quoted name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawKey {
    pub text: String,
    /// Byte offset of the first dot, which separates the prefix (`tags`) from the name.
    pub first_dot: Option<usize>,
}

impl RawKey {
    pub fn prefix(&self) -> Option<&str> {
        self.first_dot.map(|dot| &self.text[..dot])
    }

    pub fn after_prefix(&self) -> Option<&str> {
        self.first_dot.map(|dot| &self.text[dot + 1..])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawOp {
    Known(Op),
    /// A comparator the tokenizer recognises but no entity accepts (`==`, `<>`, `NOT LIKE`…),
    /// upper-cased so messages show one spelling.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ListError {
    Empty,
    NotAllStrings,
    IllFormed,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawValue {
    /// A single- or double-quoted string; `body` is the text between the quotes, verbatim,
    /// because MLflow compares against it without unescaping anything.
    Quoted {
        body: String,
        text: String,
    },
    Number {
        value: f64,
        text: String,
    },
    /// A parenthesised list. Its content is judged only after the key, so that a key that
    /// takes no list is reported as such before any complaint about the list itself.
    List {
        items: Result<Vec<String>, ListError>,
        text: String,
    },
    /// An unquoted word or back-quoted name where a value belongs.
    Unquoted {
        text: String,
    },
    /// The comparator (`IS NULL`, `IS NOT NULL`) takes no value.
    Absent,
}

impl RawValue {
    pub fn text(&self) -> &str {
        match self {
            RawValue::Quoted { text, .. }
            | RawValue::Number { text, .. }
            | RawValue::List { text, .. }
            | RawValue::Unquoted { text } => text,
            RawValue::Absent => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawComparison {
    pub key: RawKey,
    pub op: RawOp,
    pub value: RawValue,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum FilterSyntaxError {
    /// The tokens of the clause that could not be read, up to and including the offending one.
    InvalidClause(Vec<String>),
    MultipleStatements,
    Blank,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum OrderBySyntaxError {
    Unparseable,
    /// Something other than ASC or DESC follows the key.
    InvalidDirection,
}

struct Scanner<'a> {
    input: &'a str,
    pos: usize,
    single_quoted: Option<QuotedSpans>,
    double_quoted: Option<QuotedSpans>,
    back_quoted: Option<QuotedSpans>,
}

impl<'a> Scanner<'a> {
    fn new(input: &'a str) -> Self {
        Scanner {
            input,
            pos: 0,
            single_quoted: None,
            double_quoted: None,
            back_quoted: None,
        }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn spans(&mut self, quote: u8) -> &QuotedSpans {
        let input = self.input;
        let slot = match quote {
            b'\'' => &mut self.single_quoted,
            b'"' => &mut self.double_quoted,
            _ => &mut self.back_quoted,
        };
        slot.get_or_insert_with(|| QuotedSpans::new(input, quote, quote != b'`'))
    }

    /// End of the quoted span opening at the cursor, if it closes.
    fn quoted_span_end(&mut self, quote: u8) -> Option<usize> {
        let pos = self.pos;
        let spans = self.spans(quote);
        debug_assert_eq!(spans.quote(), quote);
        spans.end_of_span_at(pos)
    }

    /// The word at the cursor, without consuming it.
    fn peek_word(&self) -> &'a str {
        &self.input[self.pos..word_end(self.input, self.pos)]
    }

    fn take(&mut self, end: usize) -> &'a str {
        let taken = &self.input[self.pos..end];
        self.pos = end;
        taken
    }

    /// The text of the token at the cursor, for error messages.
    fn peek_token_text(&mut self) -> Option<String> {
        self.skip_whitespace();
        let c = self.peek()?;
        let end = match c {
            '\'' | '"' | '`' => self.quoted_span_end(c as u8).unwrap_or(self.input.len()),
            '<' | '>' | '=' | '~' | '!' => {
                self.pos
                    + self
                        .rest()
                        .find(|c| !"<>=~!".contains(c))
                        .unwrap_or(self.rest().len())
            }
            _ if is_word_char(c) || c == '-' || c == '.' => {
                let number = number_end(self.input, self.pos);
                let word = word_end(self.input, self.pos);
                number.unwrap_or(word).max(self.pos + c.len_utf8())
            }
            _ => self.pos + c.len_utf8(),
        };
        Some(self.input[self.pos..end].to_string())
    }

    fn key(&mut self) -> Option<RawKey> {
        let start = self.pos;
        let mut first_dot = None;
        loop {
            let end = match self.peek()? {
                quote @ ('`' | '"') => self.quoted_span_end(quote as u8)?,
                c if is_word_char(c) => word_end(self.input, self.pos),
                _ => return None,
            };
            self.pos = end;
            if self.peek() != Some('.') {
                break;
            }
            first_dot.get_or_insert(self.pos - start);
            self.pos += 1;
        }
        Some(RawKey {
            text: self.input[start..self.pos].to_string(),
            first_dot,
        })
    }

    fn op(&mut self) -> Option<RawOp> {
        const SYMBOLS: &str = "<>=~!";
        let c = self.peek()?;
        if SYMBOLS.contains(c) {
            let len = self
                .rest()
                .find(|c| !SYMBOLS.contains(c))
                .unwrap_or(self.rest().len());
            let symbol = self.take(self.pos + len);
            return Some(match symbol {
                "=" => RawOp::Known(Op::Eq),
                "!=" => RawOp::Known(Op::Ne),
                "<" => RawOp::Known(Op::Lt),
                "<=" => RawOp::Known(Op::Le),
                ">" => RawOp::Known(Op::Gt),
                ">=" => RawOp::Known(Op::Ge),
                other => RawOp::Unsupported(other.to_string()),
            });
        }
        let word = self.peek_word().to_ascii_uppercase();
        let op = match word.as_str() {
            "LIKE" => RawOp::Known(Op::Like),
            "ILIKE" => RawOp::Known(Op::ILike),
            "IN" => RawOp::Known(Op::In),
            "RLIKE" | "REGEXP" => RawOp::Unsupported(word.clone()),
            "NOT" => {
                self.pos += word.len();
                let second = self.keyword_after_whitespace()?;
                return match second.as_str() {
                    "IN" => Some(RawOp::Known(Op::NotIn)),
                    "LIKE" | "ILIKE" | "RLIKE" | "REGEXP" => {
                        Some(RawOp::Unsupported(format!("NOT {second}")))
                    }
                    _ => None,
                };
            }
            "IS" => {
                self.pos += word.len();
                let second = self.keyword_after_whitespace()?;
                return match second.as_str() {
                    "NULL" => Some(RawOp::Known(Op::IsNull)),
                    "NOT" if self.keyword_after_whitespace()? == "NULL" => {
                        Some(RawOp::Known(Op::IsNotNull))
                    }
                    _ => None,
                };
            }
            _ => return None,
        };
        self.pos += word.len();
        Some(op)
    }

    /// The next word, upper-cased, after at least one whitespace character.
    fn keyword_after_whitespace(&mut self) -> Option<String> {
        let before = self.pos;
        self.skip_whitespace();
        if self.pos == before {
            return None;
        }
        let word = self.peek_word();
        if word.is_empty() {
            return None;
        }
        self.pos += word.len();
        Some(word.to_ascii_uppercase())
    }

    fn value(&mut self) -> Option<RawValue> {
        let start = self.pos;
        match self.peek()? {
            quote @ ('\'' | '"') => {
                let end = self.quoted_span_end(quote as u8)?;
                let text = self.take(end);
                let body = text[1..text.len() - 1].to_string();
                Some(RawValue::Quoted {
                    body,
                    text: text.to_string(),
                })
            }
            '(' => self.list(),
            c if c == '-' || c == '.' || c.is_ascii_digit() => {
                match number_end(self.input, start) {
                    Some(end) => {
                        let text = self.take(end);
                        // The scanner only admits text Rust's float grammar also reads.
                        let value = text.parse::<f64>().ok()?;
                        Some(RawValue::Number {
                            value,
                            text: text.to_string(),
                        })
                    }
                    None if c.is_ascii_digit() => {
                        let key = self.key()?;
                        Some(RawValue::Unquoted { text: key.text })
                    }
                    None => None,
                }
            }
            _ => {
                let key = self.key()?;
                Some(RawValue::Unquoted { text: key.text })
            }
        }
    }

    /// A parenthesised list; the cursor is on `(`.
    fn list(&mut self) -> Option<RawValue> {
        let start = self.pos;
        let end = self.matching_paren_end(start)?;
        self.pos = end;
        let text = self.input[start..end].to_string();
        let items = list_items(&self.input[start + 1..end - 1]);
        Some(RawValue::List { items, text })
    }

    /// End (after the `)`) of the list opening at `start`, skipping over string literals.
    fn matching_paren_end(&self, start: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut pos = start;
        while let Some(c) = self.input[pos..].chars().next() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(pos + 1);
                    }
                }
                '\'' | '"' => {
                    let (_, end) = python_string_literal(self.input, pos)?;
                    pos = end;
                    continue;
                }
                _ => {}
            }
            pos += c.len_utf8();
        }
        None
    }
}

/// The items of a list body (between the parentheses), read as Python reads a tuple of strings.
fn list_items(body: &str) -> Result<Vec<String>, ListError> {
    let mut items = Vec::new();
    let mut saw_non_string = false;
    let mut pos = 0;
    let skip_whitespace = |pos: usize| body.len() - body[pos..].trim_start().len();
    loop {
        pos = skip_whitespace(pos);
        let Some(c) = body[pos..].chars().next() else {
            break;
        };
        match c {
            '\'' | '"' => {
                // Adjacent literals concatenate, as in Python.
                let mut item = String::new();
                while let Some('\'' | '"') = body[pos..].chars().next() {
                    let (text, end) =
                        python_string_literal(body, pos).ok_or(ListError::IllFormed)?;
                    item.push_str(&text);
                    pos = skip_whitespace(end);
                }
                items.push(item);
            }
            _ if c == '-' || c == '.' || is_word_char(c) => {
                // A number or a name (True, None…) is a well-formed item of the wrong type.
                let end = number_end(body, pos).unwrap_or_else(|| word_end(body, pos));
                if end == pos {
                    return Err(ListError::IllFormed);
                }
                saw_non_string = true;
                pos = skip_whitespace(end);
            }
            _ => return Err(ListError::IllFormed),
        }
        match body[pos..].chars().next() {
            None => break,
            Some(',') => pos += 1,
            Some(_) => return Err(ListError::IllFormed),
        }
    }
    let item_count = items.len() + usize::from(saw_non_string);
    if body.trim().is_empty() {
        Err(ListError::Empty)
    } else if item_count == 0 {
        Err(ListError::IllFormed)
    } else if saw_non_string {
        Err(ListError::NotAllStrings)
    } else {
        Ok(items)
    }
}

/// Reads a filter into comparisons. `AND` separates them; like MLflow, a missing or repeated
/// `AND` between two comparisons is tolerated.
pub(super) fn filter(input: &str) -> Result<Vec<RawComparison>, FilterSyntaxError> {
    let mut scanner = Scanner::new(input);
    if input.trim().is_empty() {
        return if input.is_empty() {
            Ok(Vec::new())
        } else {
            Err(FilterSyntaxError::Blank)
        };
    }
    let mut comparisons = Vec::new();
    loop {
        scanner.skip_whitespace();
        let Some(c) = scanner.peek() else { break };
        if c == ';' {
            return Err(if scanner.rest()[1..].trim().is_empty() {
                FilterSyntaxError::InvalidClause(vec![";".to_string()])
            } else {
                FilterSyntaxError::MultipleStatements
            });
        }
        let word = scanner.peek_word();
        let is_keyword = !word.is_empty() && !scanner.rest()[word.len()..].starts_with('.');
        if is_keyword && word.eq_ignore_ascii_case("and") {
            scanner.pos += word.len();
            continue;
        }
        if is_keyword && word.eq_ignore_ascii_case("or") {
            return Err(FilterSyntaxError::InvalidClause(vec![word.to_string()]));
        }
        comparisons.push(comparison(&mut scanner)?);
    }
    Ok(comparisons)
}

fn comparison(scanner: &mut Scanner<'_>) -> Result<RawComparison, FilterSyntaxError> {
    let mut tokens = Vec::new();
    let fail = |scanner: &mut Scanner<'_>, mut tokens: Vec<String>| {
        tokens.extend(scanner.peek_token_text());
        FilterSyntaxError::InvalidClause(tokens)
    };
    let Some(key) = scanner.key() else {
        return Err(fail(scanner, tokens));
    };
    tokens.push(key.text.clone());
    scanner.skip_whitespace();
    let op_start = scanner.pos;
    let Some(op) = scanner.op() else {
        scanner.pos = op_start;
        return Err(fail(scanner, tokens));
    };
    tokens.push(scanner.input[op_start..scanner.pos].to_string());
    let value = if matches!(op, RawOp::Known(Op::IsNull | Op::IsNotNull)) {
        RawValue::Absent
    } else {
        scanner.skip_whitespace();
        let value_start = scanner.pos;
        match scanner.value() {
            Some(value) => value,
            None => {
                scanner.pos = value_start;
                return Err(fail(scanner, tokens));
            }
        }
    };
    let takes_list = matches!(op, RawOp::Known(Op::In | Op::NotIn));
    if takes_list && !matches!(value, RawValue::List { .. }) {
        // MLflow only reads `IN` as a comparator when a parenthesised list follows it.
        tokens.push(value.text().to_string());
        return Err(FilterSyntaxError::InvalidClause(tokens));
    }
    Ok(RawComparison { key, op, value })
}

/// Reads `key [ASC|DESC]`. `None` as direction means none was written.
pub(super) fn order_by(input: &str) -> Result<(RawKey, Option<bool>), OrderBySyntaxError> {
    let mut scanner = Scanner::new(input);
    scanner.skip_whitespace();
    let key = scanner.key().ok_or(OrderBySyntaxError::Unparseable)?;
    let after_key = scanner.pos;
    scanner.skip_whitespace();
    if scanner.at_end() {
        return Ok((key, None));
    }
    if scanner.pos == after_key {
        return Err(OrderBySyntaxError::Unparseable);
    }
    let word = scanner.peek_word();
    if word.is_empty() {
        return Err(OrderBySyntaxError::Unparseable);
    }
    scanner.pos += word.len();
    scanner.skip_whitespace();
    if !scanner.at_end() {
        return Err(OrderBySyntaxError::Unparseable);
    }
    if word.eq_ignore_ascii_case("asc") {
        Ok((key, Some(true)))
    } else if word.eq_ignore_ascii_case("desc") {
        Ok((key, Some(false)))
    } else {
        Err(OrderBySyntaxError::InvalidDirection)
    }
}
