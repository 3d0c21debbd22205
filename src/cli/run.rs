//! `tracr-opt run`: run a written model from its files alone.

use super::{parse_input, show_seq};
use crate::diagnostic::Result;
use crate::rasp::json::value_to_json;
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
    /// Also print the logits: one row per position (BOS first), one column
    /// per output value (the number itself for a numerical output).
    #[arg(long)]
    pub logits: bool,
    /// Print one JSON object: input, output (and logits with --logits).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let settings = Settings { vocab: model.vocab()?, max_seq_len: model.config.n_ctx - 1, causal: model.config.causal };
    let input = parse_input(&args.input, &settings)?;
    let runner = model.runner()?;
    let ids = runner.encode(&input)?;
    let values: Vec<Value> = runner.run(&ids).into_iter().map(|(v, _)| v).collect();
    let logits = runner.logits(&ids);
    // column labels: the output values, or the output s-op for a numerical output
    let columns: Vec<String> = match model.output_values()? {
        v if v.is_empty() => vec![model.meta.output_label.clone()],
        v => v.iter().map(Value::repr).collect(),
    };
    let positions: Vec<String> = std::iter::once("BOS".to_string()).chain(input.iter().map(Value::repr)).collect();
    if args.json {
        let seq = |v: &[Value]| -> Result<serde_json::Value> {
            Ok(serde_json::Value::Array(v.iter().map(value_to_json).collect::<Result<_>>()?))
        };
        let mut j = serde_json::json!({ "input": seq(&input)?, "output": seq(&values)? });
        if args.logits {
            j["logit_columns"] = columns.into();
            j["logits"] = logits.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>().into();
        }
        println!("{j}");
        return Ok(());
    }
    println!("{}", show_seq(&values));
    if args.logits {
        let width = positions.iter().map(String::len).max().unwrap_or(3).max(8);
        let cell = columns.iter().map(String::len).max().unwrap_or(0).max(10);
        let head: Vec<String> = columns.iter().map(|c| format!("{c:>cell$}")).collect();
        println!("{:width$}  {}", "token", head.join(" "));
        for (p, row) in positions.iter().zip(logits.rows()) {
            let cells: Vec<String> = row.iter().map(|x| format!("{x:>cell$.6}")).collect();
            println!("{p:width$}  {}", cells.join(" "));
        }
    }
    Ok(())
}
