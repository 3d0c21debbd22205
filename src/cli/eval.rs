//! `tracr-opt eval`: run the RASP interpreter on one input.

use super::{parse_input, show_seq, ProgramArgs};
use crate::diagnostic::Result;
use crate::rasp::json::value_to_json;
use crate::value::Value;
use clap::Args;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The input: tokens separated by spaces, e.g. "a b c" (or "-4 2").
    #[arg(long, required_unless_present = "all_inputs", conflicts_with = "all_inputs", allow_hyphen_values = true)]
    pub input: Option<String>,
    /// Evaluate every input of every length (a seeded sample of --samples
    /// when there are more than 100 000) and print one JSON line each:
    /// {"input": [...], "output": [...]} (expected outputs for other tools).
    #[arg(long, conflicts_with_all = ["trace", "json"])]
    pub all_inputs: bool,
    /// With --all-inputs: sample size when there are too many inputs.
    #[arg(long, default_value_t = 2000, requires = "all_inputs")]
    pub samples: usize,
    /// With --all-inputs: sampling seed.
    #[arg(long, default_value_t = 0, requires = "all_inputs")]
    pub seed: u64,
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
    let Some(input_text) = &args.input else { return all_inputs(&p, &settings, &args) };
    let input = parse_input(input_text, &settings)?;
    let trace = crate::rasp::interp::evaluate(&p, &input, settings.causal)?;
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

/// `--all-inputs`: JSON lines of the interpreter's answers.
fn all_inputs(p: &crate::Program, settings: &crate::Settings, args: &EvalArgs) -> Result<()> {
    use std::io::Write;
    let options = crate::VerifyOptions { samples: args.samples.max(1), seed: args.seed, threads: 0 };
    let seq = |v: &[Value]| -> Result<serde_json::Value> {
        Ok(serde_json::Value::Array(v.iter().map(value_to_json).collect::<Result<_>>()?))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (input, output) in p.reference_io(settings, &options)? {
        let line = serde_json::json!({"input": seq(&input)?, "output": seq(&output)?});
        if writeln!(out, "{line}").is_err() {
            return Ok(()); // the reader closed the pipe
        }
    }
    let _ = out.flush();
    Ok(())
}
