//! Source files, spans and user-facing errors.
//!
//! Every error a user can cause must name its place: `file:line:col` with the
//! offending text underlined for program text, the s-op for compile errors.
//! Internal errors (bugs) are a separate kind so the CLI can exit with 2.

use std::fmt;
use std::sync::Arc;

/// One loaded program text.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown in messages (a path, or a bundled program's name).
    pub name: String,
    /// The whole text.
    pub text: String,
}

/// A byte range in a source file.
#[derive(Clone, Debug)]
pub struct Span {
    /// The file.
    pub file: Arc<SourceFile>,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character.
    pub end: usize,
}

impl Span {
    /// The bytes `start..end` of `file`.
    pub fn new(file: &Arc<SourceFile>, start: usize, end: usize) -> Span {
        Span { file: file.clone(), start, end }
    }

    /// The span covering both.
    pub fn to(&self, other: &Span) -> Span {
        Span { file: self.file.clone(), start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// 1-based line and column (in characters) of the start.
    pub fn line_col(&self) -> (usize, usize) {
        let before = &self.file.text[..self.start.min(self.file.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.file.text[line_start..self.start.min(self.file.text.len())].chars().count() + 1;
        (line, col)
    }

    /// `file:line:col`.
    pub fn location(&self) -> String {
        let (l, c) = self.line_col();
        format!("{}:{}:{}", self.file.name, l, c)
    }

    /// The source text the span covers.
    pub fn snippet(&self) -> &str {
        let t = &self.file.text;
        &t[self.start.min(t.len())..self.end.min(t.len())]
    }

    /// The line of the start with a caret underline of the span (clipped to that line).
    pub fn underline(&self) -> String {
        let text = &self.file.text;
        let start = self.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        // a very long line is shown as a window around the span, so one
        // error never prints kilobytes of source
        const CONTEXT: usize = 60;
        let before: Vec<char> = text[line_start..start].chars().collect();
        let after: Vec<char> = text[start..line_end].chars().collect();
        let (cut_before, cut_after) = (before.len() > CONTEXT, after.len() > 2 * CONTEXT);
        let shown_before: String = before[before.len().saturating_sub(CONTEXT)..].iter().collect();
        let shown_after: String = after[..after.len().min(2 * CONTEXT)].iter().collect();
        let lead = if cut_before { "…" } else { "" };
        let line = format!("{lead}{shown_before}{shown_after}{}", if cut_after { "…" } else { "" });
        let pad: String =
            lead.chars().chain(shown_before.chars()).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let width = text[start..self.end.clamp(start, line_end)].chars().count().clamp(1, 2 * CONTEXT);
        let (l, _) = self.line_col();
        let gutter = l.to_string();
        format!("{:w$} |\n{} | {}\n{:w$} | {}{}", "", gutter, line, "", pad, "^".repeat(width), w = gutter.len())
    }
}

/// What went wrong, from the user's point of view.
#[derive(Debug)]
pub enum Error {
    /// Bad program text: parse or elaboration error at a place in a file.
    Source {
        /// Where.
        span: Span,
        /// What is wrong.
        message: String,
        /// A hint, shown under the underlined text.
        note: Option<String>,
    },
    /// A problem with a program as a whole or one of its s-ops (compile, eval, value sets).
    Program {
        /// What is wrong, naming the s-op and value.
        message: String,
    },
    /// Bad command-line arguments or input files.
    Usage {
        /// What is wrong, naming the setting or file.
        message: String,
    },
    /// A bug in tracr-opt.
    Internal {
        /// What went wrong inside.
        message: String,
    },
}

/// Results whose errors are [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A source error at `span`.
    pub fn at(span: &Span, message: impl Into<String>) -> Error {
        Error::Source { span: span.clone(), message: message.into(), note: None }
    }

    /// A source error at `span` with a note (a hint shown under the underline).
    pub fn at_with_note(span: &Span, message: impl Into<String>, note: impl Into<String>) -> Error {
        Error::Source { span: span.clone(), message: message.into(), note: Some(note.into()) }
    }

    /// A problem with the program as a whole or one of its s-ops.
    pub fn program(message: impl Into<String>) -> Error {
        Error::Program { message: message.into() }
    }

    /// Bad arguments, settings, tokens or files.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage { message: message.into() }
    }

    /// A bug in tracr-opt.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal { message: message.into() }
    }

    /// Whether this is a bug in tracr-opt (exit code 2) rather than the user's error (1).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal { .. })
    }

    /// The same error with `what: ` in front of its message (source errors
    /// already name their file and place, and are left alone).
    pub fn context(self, what: &str) -> Error {
        match self {
            Error::Program { message } => Error::Program { message: format!("{what}: {message}") },
            Error::Usage { message } => Error::Usage { message: format!("{what}: {message}") },
            Error::Internal { message } => Error::Internal { message: format!("{what}: {message}") },
            e @ Error::Source { .. } => e,
        }
    }

    /// The message without location, for tests and JSON output.
    pub fn message(&self) -> &str {
        match self {
            Error::Source { message, .. }
            | Error::Program { message }
            | Error::Usage { message }
            | Error::Internal { message } => message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Source { span, message, note } => {
                write!(f, "{}: error: {}\n{}", span.location(), message, span.underline())?;
                if let Some(n) = note {
                    write!(f, "\n  = note: {n}")?;
                }
                Ok(())
            }
            Error::Program { message } => write!(f, "error: {message}"),
            Error::Usage { message } => write!(f, "error: {message}"),
            Error::Internal { message } => write!(
                f,
                "internal error: {message}\n(this is a bug in tracr-opt; please report it with the command that caused it)"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_span() {
        let text = format!("x = {}y\n", "1 + ".repeat(500));
        let file = std::sync::Arc::new(SourceFile { name: "f.rasp".into(), text: text.clone() });
        let at = text.find('y').unwrap();
        let s = Span { file, start: at, end: at + 1 };
        let u = s.underline();
        assert!(u.len() < 400, "{} bytes: {u}", u.len());
        let lines: Vec<&str> = u.lines().collect();
        // the caret sits under the y
        let caret = lines[2].find('^').unwrap();
        assert_eq!(lines[1].chars().nth(lines[2][..caret].chars().count()), Some('y'), "{u}");
        assert!(lines[1].contains("| …"));
    }

    #[test]
    fn location_and_underline_point_at_the_span() {
        let f = Arc::new(SourceFile { name: "p.rasp".into(), text: "a = 1\nb = foo(a)\n".into() });
        let start = f.text.find("foo").unwrap();
        let s = Span::new(&f, start, start + 3);
        assert_eq!(s.location(), "p.rasp:2:5");
        let u = s.underline();
        assert!(u.contains("2 | b = foo(a)"), "{u}");
        assert!(u.ends_with("|     ^^^"), "{u}");
    }
}
