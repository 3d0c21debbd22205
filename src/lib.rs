//! tracr-opt: an optimising compiler from RASP programs to exact transformer weights.
//!
//! The pipeline is described in docs/ARCHITECTURE.md.

pub mod cli;
pub mod compare;
pub mod compiler;
pub mod diagnostic;
pub mod lang;
pub mod library;
pub mod model;
pub mod rasp;
pub mod value;
pub mod verify;

pub use diagnostic::{Error, Result};
