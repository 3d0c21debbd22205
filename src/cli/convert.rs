//! `tracr-opt convert`: write a program in the JSON interchange format.

use super::ProgramArgs;
use crate::diagnostic::{Error, Result};
use crate::files::write_atomic;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Target {
    Json,
}

#[derive(Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub to: Target,
    /// Write here instead of standard output (`-`: standard output). An
    /// existing file is replaced atomically; a symlink, FIFO, device or
    /// hard-linked file is refused.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    let text = match args.to {
        Target::Json => p.to_json(&settings)?,
    };
    match args.out {
        Some(path) if path.as_os_str() != "-" => {
            if path.is_dir() {
                return Err(Error::usage(format!("{} is a directory", path.display())));
            }
            write_atomic(&path, text.as_bytes())
        }
        _ => {
            print!("{text}");
            Ok(())
        }
    }
}
