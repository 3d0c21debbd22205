//! The `.rasp` program language: lexer, parser, printer and the evaluator that
//! turns program text into a RASP DAG (see docs/LANGUAGE.md).

pub mod ast;
pub mod eval;
pub mod lexer;
pub mod load;
pub mod parser;
pub mod printer;

pub use eval::Closure;
