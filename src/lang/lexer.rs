//! Tokens of the `.rasp` language: Python's lexical rules, cut down to what
//! RASP programs use (indentation blocks, brackets that join lines, `#` comments).

use crate::diagnostic::{Error, Result, SourceFile, Span};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    /// Operators and punctuation, e.g. `==`, `(`, `**`.
    Op(&'static str),
    Newline,
    Indent,
    Dedent,
    Eof,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Words that cannot be names.
pub const KEYWORDS: &[&str] =
    &["def", "return", "lambda", "if", "else", "and", "or", "not", "in", "True", "False", "None", "import"];

// Longest first, so that `**` wins over `*`.
const OPS: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "->", "+", "-", "*", "/", "%", "<", ">", "(", ")", "[", "]", "{", "}", ",",
    ":", ".", "=", "&", "|", "~",
];

pub fn lex(file: &Arc<SourceFile>) -> Result<Vec<Token>> {
    Lexer {
        file: file.clone(),
        text: &file.text,
        pos: 0,
        out: Vec::new(),
        indents: vec![0],
        depth: 0,
        open: Vec::new(),
    }
    .run()
}

struct Lexer<'a> {
    file: Arc<SourceFile>,
    text: &'a str,
    pos: usize,
    out: Vec<Token>,
    indents: Vec<usize>,
    /// Bracket nesting: inside brackets newlines and indentation are ignored.
    depth: usize,
    /// Where each open bracket is, to report one that is never closed.
    open: Vec<(usize, char)>,
}

impl<'a> Lexer<'a> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(&self.file, start, end)
    }

    fn push(&mut self, tok: Tok, start: usize, end: usize) {
        let span = self.span(start, end);
        self.out.push(Token { tok, span });
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn run(mut self) -> Result<Vec<Token>> {
        let mut at_line_start = true;
        while self.pos < self.text.len() {
            if at_line_start && self.depth == 0 {
                at_line_start = false;
                if self.indentation()? {
                    continue;
                }
            }
            let c = self.peek().unwrap();
            let start = self.pos;
            match c {
                '\n' => {
                    self.pos += 1;
                    if self.depth == 0 {
                        if !matches!(self.out.last().map(|t| &t.tok), Some(Tok::Newline) | None) {
                            self.push(Tok::Newline, start, start + 1);
                        }
                        at_line_start = true;
                    }
                }
                ' ' | '\t' | '\r' => self.pos += 1,
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                }
                '\\' if self.text[self.pos + 1..].starts_with('\n') => self.pos += 2,
                '"' | '\'' => self.string(c)?,
                c if c.is_ascii_digit()
                    || (c == '.' && self.text[self.pos + 1..].starts_with(|d: char| d.is_ascii_digit())) =>
                {
                    self.number()?
                }
                c if c.is_alphabetic() || c == '_' => {
                    while let Some(c) = self.peek() {
                        if c.is_alphanumeric() || c == '_' {
                            self.pos += c.len_utf8();
                        } else {
                            break;
                        }
                    }
                    let word = self.text[start..self.pos].to_string();
                    self.push(Tok::Name(word), start, self.pos);
                }
                _ => {
                    let rest = &self.text[self.pos..];
                    let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                        let end = self.pos + c.len_utf8();
                        return Err(Error::at(&self.span(start, end), format!("unexpected character {c:?}")));
                    };
                    match *op {
                        "(" | "[" | "{" => {
                            self.depth += 1;
                            self.open.push((start, c));
                        }
                        ")" | "]" | "}" => {
                            self.depth = self.depth.saturating_sub(1);
                            self.open.pop();
                        }
                        _ => {}
                    }
                    self.pos += op.len();
                    self.push(Tok::Op(op), start, self.pos);
                }
            }
        }
        let end = self.text.len();
        if let Some((at, c)) = self.open.last() {
            return Err(Error::at(&self.span(*at, at + 1), format!("'{c}' was never closed")));
        }
        if !matches!(self.out.last().map(|t| &t.tok), Some(Tok::Newline) | None) {
            self.push(Tok::Newline, end, end);
        }
        while self.indents.len() > 1 {
            self.indents.pop();
            self.push(Tok::Dedent, end, end);
        }
        self.push(Tok::Eof, end, end);
        Ok(self.out)
    }

    /// Reads leading whitespace of a line and emits INDENT/DEDENT.
    /// Returns true when the line was blank or a comment (nothing emitted).
    fn indentation(&mut self) -> Result<bool> {
        let start = self.pos;
        let mut width = 0;
        while let Some(c) = self.peek() {
            match c {
                ' ' => width += 1,
                '\t' => width = (width / 8 + 1) * 8,
                '\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
        match self.peek() {
            None | Some('\n') | Some('#') => return Ok(true),
            _ => {}
        }
        let current = *self.indents.last().unwrap();
        if width > current {
            self.indents.push(width);
            self.push(Tok::Indent, start, self.pos);
        } else {
            while width < *self.indents.last().unwrap() {
                self.indents.pop();
                self.push(Tok::Dedent, self.pos, self.pos);
            }
            if width != *self.indents.last().unwrap() {
                return Err(Error::at(
                    &self.span(start, self.pos.max(start + 1)),
                    "unindent does not match any outer indentation level",
                ));
            }
        }
        Ok(false)
    }

    fn string(&mut self, quote: char) -> Result<()> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(Error::at(&self.span(start, self.pos), "unterminated string literal"));
            };
            self.pos += c.len_utf8();
            match c {
                '\n' => return Err(Error::at(&self.span(start, self.pos - 1), "unterminated string literal")),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(Error::at(&self.span(start, self.pos), "unterminated string literal"));
                    };
                    self.pos += e.len_utf8();
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        '\\' => '\\',
                        '\'' => '\'',
                        '"' => '"',
                        '0' => '\0',
                        other => {
                            return Err(Error::at(
                                &self.span(self.pos - 2, self.pos),
                                format!("unknown escape sequence \\{other}"),
                            ))
                        }
                    });
                }
                c if c == quote => break,
                c => s.push(c),
            }
        }
        self.push(Tok::Str(s), start, self.pos);
        Ok(())
    }

    fn number(&mut self) -> Result<()> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut is_float = false;
        while self.pos < bytes.len() && (bytes[self.pos].is_ascii_digit() || bytes[self.pos] == b'_') {
            self.pos += 1;
        }
        if self.pos < bytes.len() && bytes[self.pos] == b'.' {
            is_float = true;
            self.pos += 1;
            while self.pos < bytes.len() && (bytes[self.pos].is_ascii_digit() || bytes[self.pos] == b'_') {
                self.pos += 1;
            }
        }
        if self.pos < bytes.len() && (bytes[self.pos] == b'e' || bytes[self.pos] == b'E') {
            let save = self.pos;
            self.pos += 1;
            if self.pos < bytes.len() && (bytes[self.pos] == b'+' || bytes[self.pos] == b'-') {
                self.pos += 1;
            }
            if self.pos < bytes.len() && bytes[self.pos].is_ascii_digit() {
                is_float = true;
                while self.pos < bytes.len() && bytes[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text: String = self.text[start..self.pos].chars().filter(|c| *c != '_').collect();
        let span = self.span(start, self.pos);
        let tok = if is_float {
            Tok::Float(text.parse().map_err(|_| Error::at(&span, "invalid float literal"))?)
        } else {
            Tok::Int(text.parse().map_err(|_| Error::at(&span, "integer literal does not fit in 64 bits"))?)
        };
        self.out.push(Token { tok, span });
        Ok(())
    }
}
