//! SCIM filters (RFC 7644 §3.4.2.2): `userName eq "ada@example.com"`,
//! `emails[type eq "work" and value co "@example.com"]`, `not (active eq false) or title pr`.
//!
//! The parser is total: any input yields a [`Filter`] or a [`FilterError`] that says where and
//! why (SCIM's `invalidFilter`). Input length and nesting depth are bounded so a hostile filter
//! cannot exhaust the stack or the CPU. Operators and the keywords `and`, `or`, `not`, `pr`,
//! `true`, `false`, `null` are case-insensitive; attribute names keep their spelling and are
//! compared case-insensitively by consumers.

use std::fmt;

use serde_json::Value;

/// Longest filter accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths.
pub const MAX_DEPTH: usize = 32;

/// An attribute path: optional schema URN, attribute name, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// Schema URN prefix (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
    pub uri: Option<String>,
    /// Attribute name (`emails`).
    pub name: String,
    /// Sub-attribute (`value` in `emails.value`).
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater or equal
    Ge,
    /// less than
    Lt,
    /// less or equal
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    /// The operator's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`
    Compare {
        /// Attribute.
        path: AttrPath,
        /// Operator.
        op: CompareOp,
        /// Value: string, number, boolean or null.
        value: Value,
    },
    /// `attr pr`
    Present(AttrPath),
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`, whose paths
    /// are relative to the element.
    ValuePath {
        /// The multi-valued attribute.
        path: AttrPath,
        /// The element filter.
        filter: Box<Filter>,
    },
}

/// Why a filter was refused: position (byte offset) and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {pos}: {reason}")]
pub struct FilterError {
    /// Byte offset in the input.
    pub pos: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(serde_json::Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

fn err(pos: usize, reason: impl Into<String>) -> FilterError {
    FilterError { pos, reason: reason.into() }
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            b'[' => {
                out.push((i, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((i, Tok::RBracket));
                i += 1;
            }
            b'"' => {
                // A JSON string: find the closing quote, honouring escapes, then let serde
                // decode the escapes.
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < bytes.len() {
                    match (bytes[i], escaped) {
                        (b'\\', false) => escaped = true,
                        (b'"', false) => break,
                        _ => escaped = false,
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err(err(start, "unterminated string"));
                }
                let raw = &input[start..=i];
                let s: String = serde_json::from_str(raw).map_err(|_| err(start, "invalid string escape"))?;
                out.push((start, Tok::Str(s)));
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                    i += 1;
                }
                let n: serde_json::Number = input[start..i]
                    .parse()
                    .map_err(|_| err(start, format!("invalid number {:?}", &input[start..i])))?;
                out.push((start, Tok::Num(n)));
            }
            _ if c.is_ascii_alphabetic() || c == b'$' || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.' | b':' | b'$'))
                {
                    i += 1;
                }
                out.push((start, Tok::Word(input[start..i].to_owned())));
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

/// Parses an attribute path (`userName`, `emails.value`, `urn:...:User:manager.value`).
pub fn parse_attr_path(word: &str) -> Option<AttrPath> {
    // `get` rather than slicing: the input may be any UTF-8 (PATCH paths come straight from
    // the request), and byte 4 need not be a character boundary.
    let (uri, rest) = if word.len() > 4 && word.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        let (uri, rest) = word.rsplit_once(':')?;
        (Some(uri.to_owned()), rest)
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let valid = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'$' || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'))
    };
    if !valid(name) || sub.is_some_and(|s| !valid(s)) {
        return None;
    }
    Some(AttrPath { uri, name: name.to_owned(), sub: sub.map(str::to_owned) })
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(p, _)| *p)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn or_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(depth)?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and_expr(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(err(self.at(), format!("nested more than {MAX_DEPTH} levels")));
        }
        if self.keyword("not") {
            self.pos += 1;
            if self.peek() != Some(&Tok::LParen) {
                return Err(err(self.at(), "expected '(' after not"));
            }
            return Ok(Filter::Not(Box::new(self.group(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            return self.group(depth + 1);
        }
        self.attr_expr(depth)
    }

    fn group(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.pos += 1; // '('
        let inner = self.or_expr(depth)?;
        if self.peek() != Some(&Tok::RParen) {
            return Err(err(self.at(), "expected ')'"));
        }
        self.pos += 1;
        Ok(inner)
    }

    fn attr_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let start = self.at();
        let Some(Tok::Word(word)) = self.peek().cloned() else {
            return Err(err(start, "expected an attribute name"));
        };
        let path = parse_attr_path(&word).ok_or_else(|| err(start, format!("invalid attribute path {word:?}")))?;
        self.pos += 1;
        if self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            let inner = self.or_expr(depth + 1)?;
            if self.peek() != Some(&Tok::RBracket) {
                return Err(err(self.at(), "expected ']'"));
            }
            self.pos += 1;
            return Ok(Filter::ValuePath { path, filter: Box::new(inner) });
        }
        let op_at = self.at();
        let Some(Tok::Word(op)) = self.peek().cloned() else {
            return Err(err(op_at, "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"));
        };
        self.pos += 1;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op).ok_or_else(|| err(op_at, format!("unknown operator {op:?}")))?;
        let value_at = self.at();
        let value = match self.peek().cloned() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Num(n)) => Value::Number(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            _ => return Err(err(value_at, "expected a value: a \"string\", number, true, false or null")),
        };
        self.pos += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

/// Parses a filter.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_LEN {
        return Err(err(MAX_LEN, format!("longer than {MAX_LEN} bytes")));
    }
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err(err(0, "empty filter"));
    }
    let mut p = Parser { toks, pos: 0, end: input.len() };
    let f = p.or_expr(0)?;
    if p.pos != p.toks.len() {
        return Err(err(p.at(), "unexpected text after the filter"));
    }
    Ok(f)
}

impl fmt::Display for Filter {
    /// Canonical form, fully parenthesised; parses back to the same filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Self::Present(p) => write!(f, "{p} pr"),
            Self::And(a, b) => write!(f, "({a} and {b})"),
            Self::Or(a, b) => write!(f, "({a} or {b})"),
            Self::Not(a) => write!(f, "not ({a})"),
            Self::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn path(name: &str) -> AttrPath {
        AttrPath { uri: None, name: name.into(), sub: None }
    }

    #[test]
    fn parses_entra_filters() {
        assert_eq!(
            parse(r#"userName eq "ada@contoso.com""#),
            Ok(Filter::Compare { path: path("userName"), op: CompareOp::Eq, value: json!("ada@contoso.com") })
        );
        assert_eq!(parse(r#"externalId EQ "0a1b""#).map(|f| f.to_string()), Ok(r#"externalId eq "0a1b""#.to_owned()));
        let f = parse(r#"emails[type eq "work" and value co "@contoso.com"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(f, Filter::ValuePath { ref path, .. } if path.name == "emails"));
        let f = parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f,
            Filter::Present(AttrPath {
                uri: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                name: "manager".into(),
                sub: Some("value".into())
            })
        );
    }

    #[test]
    fn precedence_and_grouping() {
        let f = parse(r#"a eq 1 or b eq 2 and c eq 3"#).map(|f| f.to_string());
        assert_eq!(f, Ok("(a eq 1 or (b eq 2 and c eq 3))".to_owned()));
        let f = parse(r#"(a eq 1 or b eq 2) and not (c pr)"#).map(|f| f.to_string());
        assert_eq!(f, Ok("((a eq 1 or b eq 2) and not (c pr))".to_owned()));
        assert_eq!(parse("active eq TRUE").map(|f| f.to_string()), Ok("active eq true".to_owned()));
        assert!(parse("meta.lastModified gt \"2024-01-01T00:00:00Z\"").is_ok());
        assert_eq!(parse("x eq null").map(|f| f.to_string()), Ok("x eq null".to_owned()));
        assert!(parse("n ge -1.5e3").is_ok());
    }

    #[test]
    fn refuses_with_position() {
        for (input, pos, words) in [
            ("", 0, "empty"),
            ("userName", 8, "expected an operator"),
            ("userName eq", 11, "expected a value"),
            ("userName xx \"a\"", 9, "unknown operator"),
            ("userName eq \"a", 12, "unterminated"),
            ("(a eq 1", 7, "expected ')'"),
            ("a[b eq 1", 8, "expected ']'"),
            ("not a eq 1", 4, "expected '('"),
            ("a eq 1 b eq 2", 7, "unexpected text"),
            ("a eq 1 ^", 7, "unexpected character"),
            ("1a eq 2", 0, "expected an attribute"),
            ("a.b.c eq 1", 0, "invalid attribute path"),
            ("a eq unquoted", 5, "expected a value"),
        ] {
            let e = parse(input).err().unwrap_or_else(|| panic!("{input:?} accepted"));
            assert_eq!(e.pos, pos, "{input:?}: {e}");
            assert!(e.reason.contains(words), "{input:?}: {e}");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).err().is_some_and(|e| e.reason.contains("nested")));
        assert!(parse(&"a pr or ".repeat(1000)).is_err());
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let name = "[a-zA-Z][a-zA-Z0-9_]{0,8}";
        let leaf = prop_oneof![
            (name, prop_oneof![Just(CompareOp::Eq), Just(CompareOp::Co), Just(CompareOp::Gt)], "[ -~]{0,10}")
                .prop_map(|(n, op, s)| Filter::Compare { path: path(&n), op, value: json!(s) }),
            (name, any::<i32>()).prop_map(|(n, v)| Filter::Compare {
                path: path(&n),
                op: CompareOp::Le,
                value: json!(v)
            }),
            name.prop_map(|n| Filter::Present(path(&n))),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.clone().prop_map(|a| Filter::Not(Box::new(a))),
                ("[a-z]{1,6}", inner).prop_map(|(n, a)| Filter::ValuePath { path: path(&n), filter: Box::new(a) }),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_filter_like_text(s in "[a-z\\[\\]() \"]{0,60}( eq | or | and | pr | not )[a-z\\[\\]() \"0-9]{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn display_round_trips(f in arb_filter()) {
            prop_assert_eq!(parse(&f.to_string()), Ok(f));
        }
    }
}
