//! tracr-opt: an optimising compiler from RASP programs to the exact weights
//! of a decoder-only transformer, every model checked against the RASP
//! interpreter.
//!
//! # Quick start
//!
//! ```
//! use tracr_opt::{compile, CompileOptions, Program, VerifyOptions};
//!
//! # fn main() -> tracr_opt::Result<()> {
//! // a bundled program (or a .rasp / .json path, or text via Program::from_rasp)
//! let program = Program::load("reverse")?;
//! // its own compile(...) settings, with a shorter max_seq_len
//! let settings = program.settings_with(None, Some(4), None)?;
//! let compiled = compile(&program, &settings, &CompileOptions::default())?;
//! // every input up to length 4 against the interpreter
//! let report = compiled.verified(&VerifyOptions::default())?;
//! assert!(report.exhaustive && report.mismatches == 0);
//!
//! let model = &compiled.model;
//! let input = tracr_opt::value::parse_tokens("a b c");
//! assert_eq!(model.apply(&input)?, program.evaluate(&input, settings.causal)?);
//!
//! // the model directory TransformerLens loads (docs/EXPORT_FORMAT.md)
//! let dir = std::env::temp_dir().join(format!("tracr-opt-doc-{}", std::process::id()));
//! compiled.save(&dir, tracr_opt::DType::F32)?;
//! let back = tracr_opt::Model::load(&dir)?;
//! assert_eq!(back.apply(&input)?, model.apply(&input)?);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//!
//! Lower modules never name higher ones (a test, `tests/layering.rs`, checks
//! it). From the bottom:
//!
//! | module | holds |
//! |---|---|
//! | [`value`], [`diagnostic`], [`files`], [`figures`] | RASP values, errors with source places, atomic writes, SVG figures |
//! | [`rasp`] | the program DAG, interpreter, value sets, JSON format |
//! | [`library`] | bundled `.rasp` programs and Tracr's reference figures |
//! | [`lang`] | the `.rasp` front end: text → [`Program`] |
//! | [`model`] | weights, forward pass, model directories |
//! | [`compiler`] | rewrite → lower → factorise → allocate → residual layout → assemble |
//! | [`verify`] | the model against the interpreter |
//! | this crate root ([`compile`], [`CompileOptions`], …) | the public pipeline |
//! | [`compress`] | lossy compression of the residual stream by gradient descent |
//! | [`batch`] | a corpus compiled in parallel, resumable |
//! | [`compare`] | Tracr / baseline / optimised tables |
//! | [`cli`] | the `tracr-opt` command line |
//!
//! docs/ARCHITECTURE.md describes the data between the compiler's stages.

#![warn(missing_docs)]

mod api;
pub mod batch;
pub mod cli;
pub mod compare;
pub mod compiler;
pub mod compress;
pub mod diagnostic;
pub mod figures;
pub mod files;
pub mod lang;
pub mod library;
pub mod model;
pub mod rasp;
pub mod raster;
pub mod show;
pub mod value;
pub mod verify;

pub use api::{
    check_max_seq_len, compile, AllocatorKind, CompileOptions, IoPair, VerifyOptions, DEFAULT_MAX_WEIGHTS_GB,
    MAX_SAMPLES, MAX_SEQ_LEN, MAX_TIME_LIMIT_SECS,
};
pub use compiler::alloc::ilp::Objective;
pub use compiler::Compiled;
pub use diagnostic::{Error, Result};
pub use model::io::DType;
pub use model::Model;
pub use rasp::{Program, Settings};
pub use value::Value;
pub use verify::Report;
