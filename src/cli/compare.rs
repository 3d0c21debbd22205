//! `tracr-opt compare`: Tracr / baseline / optimised, one row per program.

use super::{Format, ModelArgs, VerifyArgs};
use crate::compare::compare;
use crate::compare::table::{csv, json, markdown, update_section};
use crate::diagnostic::{Error, Result};
use crate::library::{self, PROGRAMS};
use crate::Program;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    /// Programs (bundled names, .rasp or .json files) [default: every bundled program].
    pub programs: Vec<String>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Compile every program causal (`--causal`, `--causal true`) or
    /// bidirectional (`--causal false`), as the other commands take it
    /// [default: each program's own setting].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub causal: Option<bool>,
    /// How to build the optimised model (the baseline is always Tracr's
    /// heuristic with no optimisation).
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Skip verification.
    #[arg(long)]
    pub no_verify: bool,
    /// Replace the table between `<!-- compare:begin -->` and
    /// `<!-- compare:end -->` in this Markdown file (docs/RESULTS.md) instead
    /// of printing it.
    #[arg(long, value_name = "FILE")]
    pub update: Option<PathBuf>,
}

pub fn run(args: CompareArgs) -> Result<()> {
    if args.update.is_some() && args.format != Format::Md {
        return Err(Error::usage("--update writes the Markdown table: drop --format"));
    }
    let names: Vec<String> = if args.programs.is_empty() {
        PROGRAMS.iter().map(|b| b.name.to_string()).collect()
    } else {
        args.programs.clone()
    };
    let options = args.model.options()?;
    let plan = args.verify.options();
    plan.check()?;
    let mut rows = Vec::new();
    for name in &names {
        let p = Program::load(name)?;
        let mut settings = p
            .settings
            .clone()
            .ok_or_else(|| Error::usage(format!("{name} declares no compile(...) settings to compare at")))?;
        if let Some(causal) = args.causal {
            settings.causal = causal;
        }
        let bundled = library::find(name);
        let row = compare(&p, &settings, bundled, &options, if args.no_verify { None } else { Some(&plan) })
            .map_err(|e| e.context(&format!("comparing {name}")))?;
        rows.push(row);
    }
    let text = match args.format {
        Format::Md => markdown(&rows),
        Format::Csv => csv(&rows),
        Format::Json => format!("{}\n", json(&rows)),
    };
    match &args.update {
        Some(path) => update_section(path, &text)?,
        None => print!("{text}"),
    }
    let bad: Vec<&str> =
        rows.iter().filter(|r| r.verified.as_ref().is_some_and(|v| !v.ok())).map(|r| r.program.as_str()).collect();
    if !bad.is_empty() {
        return Err(Error::program(format!("models disagree with the interpreter: {}", bad.join(", "))));
    }
    Ok(())
}
