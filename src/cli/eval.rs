//! `tracr-opt eval`: run the RASP interpreter on one input.

use super::{parse_input, show_seq, ProgramArgs};
use crate::diagnostic::Result;
use crate::rasp::interp::evaluate;
use crate::rasp::json::value_to_json;
use crate::value::Value;
use clap::Args;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The input: tokens separated by spaces, e.g. "a b c".
    #[arg(long)]
    pub input: String,
    /// Also print every s-op's value at every position.
    #[arg(long)]
    pub trace: bool,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    let input = parse_input(&args.input, &settings)?;
    let trace = evaluate(&p, &input, settings.causal)?;
    let sop_rows: Vec<(&str, &Vec<Value>)> = p
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(id, n)| trace.sops[id].as_ref().map(|v| (n.label.as_str(), v)))
        .collect();
    if args.json {
        let seq = |v: &[Value]| -> Result<serde_json::Value> {
            Ok(serde_json::Value::Array(v.iter().map(value_to_json).collect::<Result<_>>()?))
        };
        let mut obj = serde_json::Map::new();
        obj.insert("program".into(), p.name.clone().into());
        obj.insert("causal".into(), settings.causal.into());
        obj.insert("input".into(), seq(&input)?);
        obj.insert("output".into(), seq(trace.output())?);
        if args.trace {
            let mut t = serde_json::Map::new();
            for (label, vals) in &sop_rows {
                t.insert(label.to_string(), seq(vals)?);
            }
            obj.insert("trace".into(), serde_json::Value::Object(t));
        }
        println!("{}", serde_json::Value::Object(obj));
        return Ok(());
    }
    if args.trace {
        let width = sop_rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (label, vals) in &sop_rows {
            println!("{label:width$}  {}", show_seq(vals));
        }
        println!();
    }
    println!("{}", show_seq(trace.output()));
    Ok(())
}
