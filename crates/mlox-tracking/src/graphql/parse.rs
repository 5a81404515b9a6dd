//! GraphQL documents: the query language's grammar (operations, fragments, fields with aliases,
//! arguments and directives, variables, every literal kind), read into a small tree, and the
//! limits MLflow's server puts on a document before running it.

use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Variable(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<Literal>),
    Object(Vec<(String, Literal)>),
}

#[derive(Clone, Debug)]
pub struct Directive {
    pub name: String,
    pub arguments: Vec<(String, Literal)>,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Literal)>,
    pub directives: Vec<Directive>,
    /// `None` for a leaf; `Some` (never empty) when the field selects subfields.
    pub selection_set: Option<Vec<Selection>>,
}

impl Field {
    /// The key the field's value has in the answer.
    pub fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug)]
pub enum Selection {
    Field(Field),
    FragmentSpread {
        name: String,
        directives: Vec<Directive>,
    },
    InlineFragment {
        type_condition: Option<String>,
        directives: Vec<Directive>,
        selection_set: Vec<Selection>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: Option<String>,
    /// Each variable with its default value, if it has one.
    pub variables: Vec<(String, Option<Literal>)>,
    pub selection_set: Vec<Selection>,
}

#[derive(Clone, Debug)]
pub struct Fragment {
    pub type_condition: String,
    pub selection_set: Vec<Selection>,
}

#[derive(Clone, Debug, Default)]
pub struct Document {
    pub operations: Vec<Operation>,
    pub fragments: HashMap<String, Fragment>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Punct(char),
    Spread,
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
}

fn syntax_error(message: impl std::fmt::Display) -> String {
    format!("Syntax Error: {message}")
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\u{feff}' | ' ' | '\t' | '\n' | '\r' | ',' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
            '!' | '$' | '&' | '(' | ')' | ':' | '=' | '@' | '[' | ']' | '{' | '|' | '}' => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
            '.' => {
                if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                    tokens.push(Token::Spread);
                    i += 3;
                } else {
                    return Err(syntax_error("Unexpected '.'."));
                }
            }
            '"' => {
                let (text, next) = read_string(&chars, i)?;
                tokens.push(Token::Str(text));
                i = next;
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i] == '_' || chars[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                tokens.push(Token::Name(chars[start..i].iter().collect()));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                let mut is_float = false;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E')
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    is_float |= matches!(chars[i], '.' | 'e' | 'E');
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let token = if is_float {
                    text.parse().map(Token::Float).ok()
                } else {
                    text.parse().map(Token::Int).ok()
                };
                tokens.push(token.ok_or_else(|| syntax_error(format!("Invalid number, {text}.")))?);
            }
            other => {
                return Err(syntax_error(format!("Unexpected character: {other:?}.")));
            }
        }
    }
    Ok(tokens)
}

/// A string literal starting at `start` (its opening quote): a block string `"""…"""` is
/// taken as written, a plain one with its escapes read. Answers the text and where the
/// literal ends.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let unterminated = || syntax_error("Unterminated string.");
    if chars.get(start + 1) == Some(&'"') && chars.get(start + 2) == Some(&'"') {
        let mut i = start + 3;
        let mut text = String::new();
        while i < chars.len() {
            if chars[i..].starts_with(&['"', '"', '"']) {
                return Ok((text, i + 3));
            }
            if chars[i..].starts_with(&['\\', '"', '"', '"']) {
                text.push_str("\"\"\"");
                i += 4;
                continue;
            }
            text.push(chars[i]);
            i += 1;
        }
        return Err(unterminated());
    }
    let mut i = start + 1;
    let mut text = String::new();
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((text, i + 1)),
            '\n' | '\r' => return Err(unterminated()),
            '\\' => {
                let escaped = *chars.get(i + 1).ok_or_else(unterminated)?;
                i += 2;
                match escaped {
                    '"' | '\\' | '/' => text.push(escaped),
                    'b' => text.push('\u{8}'),
                    'f' => text.push('\u{c}'),
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    'u' => {
                        let hex: String = chars
                            .get(i..i + 4)
                            .ok_or_else(unterminated)?
                            .iter()
                            .collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                syntax_error(format!("Invalid Unicode escape \\u{hex}."))
                            })?;
                        text.push(code);
                        i += 4;
                    }
                    other => {
                        return Err(syntax_error(format!(
                            "Invalid character escape sequence: \\{other}."
                        )));
                    }
                }
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(unterminated())
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_is(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }

    fn next(&mut self) -> Result<Token, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| syntax_error("Unexpected <EOF>."))?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(p) if p == c => Ok(()),
            other => Err(syntax_error(format!("Expected '{c}', found {other:?}."))),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Name(name) => Ok(name),
            other => Err(syntax_error(format!("Expected Name, found {other:?}."))),
        }
    }

    fn document(&mut self) -> Result<Document, String> {
        let mut document = Document::default();
        while let Some(token) = self.peek() {
            match token {
                Token::Punct('{') => document.operations.push(Operation {
                    kind: OperationKind::Query,
                    name: None,
                    variables: Vec::new(),
                    selection_set: self.selection_set()?,
                }),
                Token::Name(word) if word == "fragment" => {
                    self.at += 1;
                    let name = self.name()?;
                    if name == "on" {
                        return Err(syntax_error("Unexpected Name \"on\"."));
                    }
                    let type_condition = self.type_condition()?;
                    self.directives()?;
                    let selection_set = self.selection_set()?;
                    document.fragments.insert(
                        name,
                        Fragment {
                            type_condition,
                            selection_set,
                        },
                    );
                }
                Token::Name(word) => {
                    let kind = match word.as_str() {
                        "query" => OperationKind::Query,
                        "mutation" => OperationKind::Mutation,
                        "subscription" => OperationKind::Subscription,
                        other => return Err(syntax_error(format!("Unexpected Name \"{other}\"."))),
                    };
                    self.at += 1;
                    let name = match self.peek() {
                        Some(Token::Name(_)) => Some(self.name()?),
                        _ => None,
                    };
                    let variables = self.variable_definitions()?;
                    self.directives()?;
                    let selection_set = self.selection_set()?;
                    document.operations.push(Operation {
                        kind,
                        name,
                        variables,
                        selection_set,
                    });
                }
                other => return Err(syntax_error(format!("Unexpected {other:?}."))),
            }
        }
        if document.operations.is_empty() && document.fragments.is_empty() {
            return Err(syntax_error("Unexpected <EOF>."));
        }
        Ok(document)
    }

    fn type_condition(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Name(on) if on == "on" => self.name(),
            other => Err(syntax_error(format!("Expected \"on\", found {other:?}."))),
        }
    }

    fn variable_definitions(&mut self) -> Result<Vec<(String, Option<Literal>)>, String> {
        let mut variables = Vec::new();
        if !self.peek_is('(') {
            return Ok(variables);
        }
        self.at += 1;
        while !self.peek_is(')') {
            self.expect('$')?;
            let name = self.name()?;
            self.expect(':')?;
            self.type_reference()?;
            let default = if self.peek_is('=') {
                self.at += 1;
                Some(self.literal(true)?)
            } else {
                None
            };
            self.directives()?;
            variables.push((name, default));
        }
        self.at += 1;
        Ok(variables)
    }

    fn type_reference(&mut self) -> Result<(), String> {
        if self.peek_is('[') {
            self.at += 1;
            self.type_reference()?;
            self.expect(']')?;
        } else {
            self.name()?;
        }
        if self.peek_is('!') {
            self.at += 1;
        }
        Ok(())
    }

    fn directives(&mut self) -> Result<Vec<Directive>, String> {
        let mut directives = Vec::new();
        while self.peek_is('@') {
            self.at += 1;
            let name = self.name()?;
            let arguments = self.arguments()?;
            directives.push(Directive { name, arguments });
        }
        Ok(directives)
    }

    fn arguments(&mut self) -> Result<Vec<(String, Literal)>, String> {
        let mut arguments = Vec::new();
        if !self.peek_is('(') {
            return Ok(arguments);
        }
        self.at += 1;
        while !self.peek_is(')') {
            let name = self.name()?;
            self.expect(':')?;
            arguments.push((name, self.literal(false)?));
        }
        self.at += 1;
        if arguments.is_empty() {
            return Err(syntax_error("Expected Name, found ')'."));
        }
        Ok(arguments)
    }

    fn literal(&mut self, constant: bool) -> Result<Literal, String> {
        Ok(match self.next()? {
            Token::Punct('$') if !constant => Literal::Variable(self.name()?),
            Token::Int(n) => Literal::Int(n),
            Token::Float(f) => Literal::Float(f),
            Token::Str(s) => Literal::Str(s),
            Token::Name(word) => match word.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => Literal::Enum(word),
            },
            Token::Punct('[') => {
                let mut items = Vec::new();
                while !self.peek_is(']') {
                    items.push(self.literal(constant)?);
                }
                self.at += 1;
                Literal::List(items)
            }
            Token::Punct('{') => {
                let mut fields = Vec::new();
                while !self.peek_is('}') {
                    let name = self.name()?;
                    self.expect(':')?;
                    fields.push((name, self.literal(constant)?));
                }
                self.at += 1;
                Literal::Object(fields)
            }
            other => return Err(syntax_error(format!("Unexpected {other:?}."))),
        })
    }

    fn selection_set(&mut self) -> Result<Vec<Selection>, String> {
        self.expect('{')?;
        let mut selections = Vec::new();
        while !self.peek_is('}') {
            selections.push(self.selection()?);
        }
        self.at += 1;
        if selections.is_empty() {
            return Err(syntax_error("Expected Name, found '}'."));
        }
        Ok(selections)
    }

    fn selection(&mut self) -> Result<Selection, String> {
        if self.peek() == Some(&Token::Spread) {
            self.at += 1;
            return match self.peek() {
                Some(Token::Name(name)) if name != "on" => {
                    let name = self.name()?;
                    let directives = self.directives()?;
                    Ok(Selection::FragmentSpread { name, directives })
                }
                _ => {
                    let type_condition = match self.peek() {
                        Some(Token::Name(_)) => Some(self.type_condition()?),
                        _ => None,
                    };
                    let directives = self.directives()?;
                    let selection_set = self.selection_set()?;
                    Ok(Selection::InlineFragment {
                        type_condition,
                        directives,
                        selection_set,
                    })
                }
            };
        }
        let first = self.name()?;
        let (alias, name) = if self.peek_is(':') {
            self.at += 1;
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let arguments = self.arguments()?;
        let directives = self.directives()?;
        let selection_set = if self.peek_is('{') {
            Some(self.selection_set()?)
        } else {
            None
        };
        Ok(Selection::Field(Field {
            alias,
            name,
            arguments,
            directives,
            selection_set,
        }))
    }
}

pub fn parse(source: &str) -> Result<Document, String> {
    let tokens = tokenize(source)?;
    Parser { tokens, at: 0 }.document()
}

/// Deepest selection level, most selections and most aliases at one level MLflow's server
/// accepts; the last two can be raised through the environment, as in MLflow.
const MAX_DEPTH: usize = 10;
const MAX_SELECTIONS: usize = 1000;
const ROOT_FIELDS_VARIABLE: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS";
const ALIASES_VARIABLE: &str = "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES";
const DEFAULT_LIMIT: usize = 10;

fn limit_from_env(variable: &str) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
}

/// The fields of one selection level, with those of its fragments (which count at this level
/// too), and how many of them have aliases.
fn level_fields<'a>(
    selections: &'a [Selection],
    fragments: &'a HashMap<String, Fragment>,
) -> (Vec<&'a Field>, usize) {
    let mut fields = Vec::new();
    let mut aliases = 0;
    let mut pending: Vec<&'a Selection> = selections.iter().collect();
    let mut seen_fragments = HashSet::new();
    while let Some(selection) = pending.pop() {
        match selection {
            Selection::Field(field) => {
                aliases += usize::from(field.alias.is_some());
                fields.push(field);
            }
            Selection::InlineFragment { selection_set, .. } => pending.extend(selection_set),
            Selection::FragmentSpread { name, .. } => {
                if seen_fragments.insert(name.as_str())
                    && let Some(fragment) = fragments.get(name)
                {
                    pending.extend(&fragment.selection_set);
                }
            }
        }
    }
    (fields, aliases)
}

/// Refuses a document deeper, wider or with more root fields or aliases than MLflow's server
/// runs, in its words, before anything is resolved.
pub fn check_limits(document: &Document) -> Result<(), String> {
    let mut root_fields = 0;
    let mut most_aliases = 0;
    let mut selections = 0;
    for operation in &document.operations {
        let mut stack: Vec<(&[Selection], usize)> = vec![(&operation.selection_set, 1)];
        while let Some((level, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
            }
            let (fields, aliases) = level_fields(level, &document.fragments);
            for field in fields {
                if depth == 1 {
                    root_fields += 1;
                }
                if let Some(sub) = &field.selection_set {
                    stack.push((sub, depth + 1));
                }
                selections += 1;
                if selections > MAX_SELECTIONS {
                    return Err(format!(
                        "Query exceeds maximum total selections of {MAX_SELECTIONS}"
                    ));
                }
            }
            most_aliases = most_aliases.max(aliases);
        }
    }
    let too_many = |what: &str, variable: &str, found: usize| {
        let limit = limit_from_env(variable);
        (found > limit).then(|| {
            format!(
                "GraphQL queries should have at most {limit} {what}, got {found} {what}. To \
                 increase the limit, set the {variable} environment variable."
            )
        })
    };
    match too_many("root fields", ROOT_FIELDS_VARIABLE, root_fields)
        .or_else(|| too_many("aliases", ALIASES_VARIABLE, most_aliases))
    {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_with_every_construct_is_read() {
        let document = parse(
            r#"
            # a comment
            query runs($id: String! = "x", $n: [Int]) @component(name: "Test") {
              a: mlflowGetRun(input: {runId: $id, flags: [1, 2.5, true, null, ACTIVE_ONLY]}) {
                run { ...parts ... on MlflowRun { info { status } } }
              }
            }
            fragment parts on MlflowRun { data { metrics { key value } } }
            "#,
        )
        .unwrap();
        let operation = &document.operations[0];
        assert_eq!(operation.name.as_deref(), Some("runs"));
        assert_eq!(operation.variables[0].1, Some(Literal::Str("x".into())));
        let Selection::Field(field) = &operation.selection_set[0] else {
            panic!("not a field")
        };
        assert_eq!(field.response_key(), "a");
        assert_eq!(
            field.arguments[0].1,
            Literal::Object(vec![
                ("runId".into(), Literal::Variable("id".into())),
                (
                    "flags".into(),
                    Literal::List(vec![
                        Literal::Int(1),
                        Literal::Float(2.5),
                        Literal::Bool(true),
                        Literal::Null,
                        Literal::Enum("ACTIVE_ONLY".into()),
                    ])
                ),
            ])
        );
        assert_eq!(document.fragments["parts"].type_condition, "MlflowRun");
    }

    #[test]
    fn malformed_documents_are_syntax_errors() {
        for bad in [
            "",
            "{",
            "query { a(x: ) }",
            "{ a }}",
            "{ \"open }",
            "{ a(x: 1.2.3) }",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("Syntax Error"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn limits_are_mlflows() {
        let deep = (0..12).fold("name".to_string(), |inner, _| format!("name {{ {inner} }}"));
        let err = check_limits(&parse(&format!("{{ a {{ {deep} }} }}")).unwrap()).unwrap_err();
        assert_eq!(err, "Query exceeds maximum depth of 10");
        let wide: String = (0..1002).map(|i| format!("f{i} {{ name }} ")).collect();
        let err = check_limits(&parse(&format!("{{ a {{ {wide} }} }}")).unwrap()).unwrap_err();
        assert_eq!(err, "Query exceeds maximum total selections of 1000");
        let roots: String = (0..12).map(|i| format!("k{i}: test ")).collect();
        let err = check_limits(&parse(&format!("{{ {roots} }}")).unwrap()).unwrap_err();
        assert!(err.starts_with("GraphQL queries should have at most 10 root fields, got 12"));
        let aliases: String = (0..12)
            .map(|i| format!("e{i}: experiment {{ name }} "))
            .collect();
        let err = check_limits(&parse(&format!("{{ a {{ {aliases} }} }}")).unwrap()).unwrap_err();
        assert!(err.starts_with("GraphQL queries should have at most 10 aliases, got 12"));
    }
}
