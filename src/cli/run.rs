//! `tracr-opt run`: run a written model from its files alone.

use super::show_seq;
use crate::diagnostic::{Error, Result};
use crate::model::forward::Runner;
use crate::model::io::load;
use crate::rasp::json::value_from_json;
use crate::value::Value;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// A model directory written by `tracr-opt compile --out DIR`.
    pub model: PathBuf,
    /// The input: tokens separated by spaces, e.g. "a b c".
    #[arg(long)]
    pub input: String,
    /// Also print the raw output value at each position.
    #[arg(long)]
    pub logits: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    if !args.model.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a model directory (write one with `tracr-opt compile PROGRAM --out DIR`)",
            args.model.display()
        )));
    }
    let model = load(&args.model)?;
    let vocab: Vec<Value> = model.meta.tokens.iter().skip(2).map(value_from_json).collect::<Result<_>>()?;
    let mut input = Vec::new();
    for tok in args.input.split_whitespace() {
        let v = vocab.iter().find(|v| v.display() == tok || v.repr() == tok).cloned().ok_or_else(|| {
            Error::usage(format!(
                "input token '{tok}' is not in the model's vocab {{{}}}",
                vocab.iter().map(Value::display).collect::<Vec<_>>().join(", ")
            ))
        })?;
        input.push(v);
    }
    if input.is_empty() {
        return Err(Error::usage("the input is empty: give at least one token"));
    }
    let ids = model.encode(&input)?;
    let out = Runner::new(&model).run(&ids);
    let values: Vec<Value> = out.iter().map(|(v, _)| v.clone()).collect();
    println!("{}", show_seq(&values));
    if args.logits {
        println!("{}", out.iter().map(|(_, x)| format!("{x:.6}")).collect::<Vec<_>>().join(" "));
    }
    Ok(())
}
