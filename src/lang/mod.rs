//! The `.rasp` program language: lexer, parser, printer and the evaluator that
//! turns program text into a RASP DAG (see docs/LANGUAGE.md).

pub mod ast;
pub(crate) mod eval;
pub(crate) mod lexer;
pub mod load;
pub mod parser;
pub mod printer;

pub use lexer::KEYWORDS;
