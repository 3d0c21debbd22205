//! `tracr-opt compile`: program → verified model (→ files).

use super::{ModelArgs, ProgramArgs, VerifyArgs};
use crate::diagnostic::{Error, Result};
use crate::model::io::DType;
use crate::model::Model;
use crate::verify::Report;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Skip verification against the interpreter (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    /// Write the model here (model.safetensors, config.json, tracr_opt.json).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Precision of the written weights.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Say what each graph rewrite did and why, and which residual dimensions
    /// several s-ops use in turn.
    #[arg(long)]
    pub explain: bool,
}

pub fn run(args: CompileArgs) -> Result<()> {
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    if !args.no_verify {
        // before the compile, which may take long: a verification too big to run
        args.verify.options().check_for(&settings.vocab, settings.max_seq_len)?;
    }
    let compiled = super::progress::compile_with_spinner(&p, &settings, &args.model.options()?)?;
    let report =
        if args.no_verify { None } else { Some(super::progress::verify_with_bar(&compiled, &args.verify.options())?) };
    let model = &compiled.model;
    let compile_ms = compiled.stage_ms.iter().map(|(_, ms)| ms).sum::<f64>();
    if let Some(r) = &report {
        if !r.ok() {
            eprintln!("{}", super::verify::describe(r));
            return Err(Error::program(format!(
                "the compiled model of '{}' disagrees with the interpreter on {} of {} inputs; nothing was written",
                p.name, r.mismatches, r.inputs
            )));
        }
    }
    if let Some(dir) = &args.out {
        model.save(dir, args.dtype)?;
    }
    let explained: Vec<String> = compiled.rewrites.iter().map(|r| format!("{}: {}", r.pass, r.what)).collect();
    if args.json {
        let mut j = compiled.summary_json(report.as_ref());
        if args.explain {
            j["rewrites"] = explained.into();
        }
        println!("{j}");
    } else {
        if args.explain {
            if explained.is_empty() {
                println!("rewrites: none applied");
            } else {
                println!("rewrites:");
                for e in &explained {
                    println!("  {e}");
                }
            }
            let reused: Vec<&String> = model.meta.residual_labels.iter().filter(|l| l.contains(" | ")).collect();
            if reused.is_empty() {
                println!("residual: no dimension reused");
            } else {
                println!(
                    "residual: {} dimensions reused (each direction from its writer to its last reader):",
                    reused.len()
                );
                for l in reused {
                    println!("  {l}");
                }
            }
        }
        print!("{}", summary_text(model, report.as_ref(), compile_ms));
        if let Some(info) = &compiled.allocation.info {
            println!(
                "  allocation: minimised {} — {} (gap {:.1}%), solved in {:.1} ms",
                info.objectives.join(", "),
                match (&info.stopped_by, info.optimal) {
                    (_, true) => "proven optimal".to_string(),
                    (Some(why), false) => format!("best found before {why} stopped the search"),
                    (None, false) => "not proven optimal".to_string(),
                },
                info.gap * 100.0,
                info.solve_ms
            );
        }
        if let Some(dir) = &args.out {
            println!("written to {}", dir.display());
        }
    }
    Ok(())
}

pub fn summary_text(m: &Model, report: Option<&Report>, compile_ms: f64) -> String {
    let c = &m.config;
    let mut s = format!(
        "{} ({} allocation, {})\n  layers {}  d_model {}{}  heads {}  d_head {}  d_mlp {}\n  params {} (nonzero {})  compiled in {:.1} ms\n",
        m.meta.program,
        m.meta.allocator,
        if c.causal { "causal" } else { "bidirectional" },
        c.n_layers,
        c.d_model,
        match &m.meta.residual {
            Some(r) if r.shared => format!(
                " ({}{}; {} without residual sharing; {} MLP neurons only erase dead s-ops)",
                if r.d_model_lower_bound == c.d_model {
                    "the least for this allocation".to_string()
                } else {
                    format!("no layout of this allocation is narrower than {}", r.d_model_lower_bound)
                },
                match r.d_model_bound_any_allocation {
                    Some(b) if b >= c.d_model => format!(" and for every {}-layer allocation", c.n_layers),
                    Some(b) => format!("; no {}-layer allocation is narrower than {b}", c.n_layers),
                    None => String::new(),
                },
                r.d_model_unshared,
                r.erase_neurons
            ),
            Some(r) => format!(
                " (one dimension per direction; residual sharing could reach {})",
                r.d_model_lower_bound
            ),
            None => match &m.meta.rotation {
                Some(r) => format!(" (residual basis turned by the random rotation of seed {}: exact, no dimension holds one direction)", r.seed),
                None => String::new(),
            },
        },
        c.n_heads,
        c.d_head,
        c.d_mlp,
        m.params(),
        m.nonzero_params(),
        compile_ms
    );
    s.push_str("  per layer: each head as s-op[qk rank, ov rank] (head dimensions W_QK and W_OV use), each MLP block as s-op[neurons]\n");
    for (l, info) in m.meta.layers.iter().enumerate() {
        let heads: Vec<String> =
            info.heads.iter().map(|h| format!("{}[qk {}, ov {}]", h.node, h.qk_rank, h.ov_rank)).collect();
        let mlps: Vec<String> = info.mlps.iter().map(|x| format!("{}[{}]", x.node, x.hidden)).collect();
        s.push_str(&format!(
            "  L{l}: attn {:28} mlp {}\n",
            if heads.is_empty() { "-".to_string() } else { heads.join(", ") },
            if mlps.is_empty() { "-".to_string() } else { mlps.join(", ") }
        ));
    }
    match report {
        Some(r) => s.push_str(&format!(
            "  verified in {:.1} ms: {} inputs ({}), 0 mismatches{}{}\n",
            r.ms,
            r.inputs,
            if r.exhaustive { "every input" } else { "sampled" },
            if r.max_abs_error > 0.0 {
                format!(", max numerical error {:.1e}", r.max_abs_error)
            } else {
                String::new()
            },
            match r.max_diff_from_unoptimised {
                Some(d) => format!("; logits within {d:.1e} of the unoptimised model"),
                None => String::new(),
            }
        )),
        None => s.push_str("  not verified (--no-verify)\n"),
    }
    s
}
