//! `tracr-opt run`: run a written model from its files alone.

use super::{parse_input, show_seq};
use crate::diagnostic::Result;
use crate::value::Value;
use crate::{Model, Settings};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// A model directory written by `tracr-opt compile --out DIR`.
    pub model: PathBuf,
    /// The input: tokens separated by spaces, e.g. "a b c" (or "-4 2").
    #[arg(long, allow_hyphen_values = true)]
    pub input: String,
    /// Also print the raw output value at each position.
    #[arg(long)]
    pub logits: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let settings = Settings { vocab: model.vocab()?, max_seq_len: model.config.n_ctx - 1, causal: model.config.causal };
    let input = parse_input(&args.input, &settings)?;
    let runner = model.runner()?;
    let out = runner.run(&runner.encode(&input)?);
    let values: Vec<Value> = out.iter().map(|(v, _)| v.clone()).collect();
    println!("{}", show_seq(&values));
    if args.logits {
        println!("{}", out.iter().map(|(_, x)| format!("{x:.6}")).collect::<Vec<_>>().join(" "));
    }
    Ok(())
}
