//! `tracr-opt verify`: compile and compare the model with the interpreter.

use super::{show_seq, ModelArgs, ProgramArgs, VerifyArgs};
use crate::diagnostic::{Error, Result};
use crate::verify::Report;
use clap::Args;

#[derive(Args)]
pub struct VerifyCmdArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn describe(r: &Report) -> String {
    let mut s = format!(
        "checked {} inputs ({}): {} mismatch{}",
        r.inputs,
        if r.exhaustive { "every input of every length" } else { "random sample" },
        r.mismatches,
        if r.mismatches == 1 { "" } else { "es" }
    );
    if r.max_abs_error > 0.0 {
        s.push_str(&format!(", max numerical error {:.2e}", r.max_abs_error));
    }
    if let Some(d) = r.max_diff_from_unoptimised {
        s.push_str(&format!("; logits within {d:.1e} of the unoptimised model"));
    }
    for m in &r.examples {
        match &m.error {
            Some(e) => s.push_str(&format!("\n  input {}: {e}", show_seq(&m.input))),
            None => s.push_str(&format!(
                "\n  input {}: interpreter {} model {}",
                show_seq(&m.input),
                show_seq(&m.expected),
                show_seq(&m.got)
            )),
        }
    }
    s
}

pub fn run(args: VerifyCmdArgs) -> Result<()> {
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    let compiled = super::progress::compile_with_spinner(&p, &settings, &args.model.options()?)?;
    let r = super::progress::verify_with_bar(&compiled, &args.verify.options())?;
    if args.json {
        let examples: Vec<serde_json::Value> = r
            .examples
            .iter()
            .map(|m| {
                serde_json::json!({
                    "input": m.input.iter().map(|v| v.repr()).collect::<Vec<_>>(),
                    "expected": m.expected.iter().map(|v| v.repr()).collect::<Vec<_>>(),
                    "got": m.got.iter().map(|v| v.repr()).collect::<Vec<_>>(),
                    "error": m.error,
                })
            })
            .collect();
        let mut j = serde_json::json!({ "program": p.name });
        j.as_object_mut().unwrap().extend(r.summary_json().as_object().unwrap().clone());
        j["examples"] = examples.into();
        println!("{j}");
    } else {
        println!("{}", describe(&r));
    }
    if r.ok() {
        Ok(())
    } else {
        Err(Error::program(format!(
            "the model of '{}' disagrees with the interpreter on {} inputs",
            p.name, r.mismatches
        )))
    }
}
