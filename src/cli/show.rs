//! `tracr-opt show`: pictures of a model (`crate::show`), written as a
//! directory of SVG (or PNG) files, all or nothing.

use super::{parse_input, ModelArgs, ProgramArgs, VerifyArgs};
use crate::diagnostic::{Error, Result};
use crate::show::Figure;
use crate::{Model, Settings};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The pictures' file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// Scalable vector graphics (text stays text).
    Svg,
    /// PNG, rendered from the SVG at twice its size.
    Png,
}

#[derive(Args)]
pub struct ShowArgs {
    /// A bundled program, a .rasp or .json file (compiled and verified
    /// first), or a model directory written by `tracr-opt compile --out`.
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Write the pictures into this directory (created; a previous `show`
    /// output there is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The pictures' format.
    #[arg(long, value_enum, default_value = "svg")]
    pub format: ImageFormat,
    /// Also draw the residual stream at every layer for this input (tokens
    /// separated by spaces, e.g. "a b c").
    #[arg(long, allow_hyphen_values = true)]
    pub input: Option<String>,
}

/// The entries a `show` output directory holds.
fn ours(name: &str) -> bool {
    name == "heads" || ["layers.", "residual.", "input."].iter().any(|p| name.starts_with(p))
}

/// The model the arguments name: loaded, or compiled and verified.
fn model(args: &ShowArgs) -> Result<Model> {
    let spec = &args.program.program;
    let path = Path::new(spec);
    if path.is_dir() {
        let s = &args.program.settings;
        if s.vocab.is_some() || s.max_seq_len.is_some() || s.causal.is_some() || args.program.output.is_some() {
            return Err(Error::usage(
                "a model directory is shown as it is: --vocab, --max-seq-len, --causal and --output apply to programs",
            ));
        }
        return Model::load(path);
    }
    if (spec.contains('/') || spec.ends_with(".rasp") || spec.ends_with(".json")) && !path.exists() {
        return Err(Error::usage(format!(
            "{spec}: no such model directory or program file (a model directory is written by `tracr-opt compile --out DIR`)"
        )));
    }
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    // a bad --input is refused before the compile
    if let Some(i) = &args.input {
        parse_input(i, &settings)?;
    }
    let compiled = super::progress::compile_with_spinner(&p, &settings, &args.model.options()?)?;
    let report = super::progress::verify_with_bar(&compiled, &args.verify.options())?;
    if !report.ok() {
        eprintln!("{}", super::verify::describe(&report));
        return Err(Error::program(format!(
            "the compiled model of '{}' disagrees with the interpreter on {} of {} inputs; nothing was drawn",
            p.name, report.mismatches, report.inputs
        )));
    }
    Ok(compiled.model)
}

/// The files to write: (relative path, bytes).
fn render(figures: &[Figure], format: ImageFormat) -> Result<Vec<(String, Vec<u8>)>> {
    figures
        .iter()
        .map(|f| match format {
            ImageFormat::Svg => Ok((format!("{}.svg", f.name), f.svg.clone().into_bytes())),
            ImageFormat::Png => Ok((format!("{}.png", f.name), crate::raster::png(&f.svg)?)),
        })
        .collect()
}

/// Writes the files into `dir` all at once (`files::write_dir_atomic`),
/// refusing a directory that holds anything `show` did not write.
fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::usage(format!("{} exists and is not a directory", dir.display())));
        }
        let foreign: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .filter(|n| !ours(n))
            .collect();
        if !foreign.is_empty() {
            return Err(Error::usage(format!(
                "{} holds files `show` did not write ({}); choose a new or empty --out directory",
                dir.display(),
                foreign.join(", ")
            )));
        }
    }
    crate::files::write_dir_atomic(dir, files)
}

pub fn run(args: ShowArgs) -> Result<()> {
    // a missing --out parent is refused before anything is compiled
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!("the directory {} does not exist", parent.display())));
    }
    let model = model(&args)?;
    let input = match &args.input {
        Some(i) => {
            let c = &model.config;
            let settings = Settings { vocab: model.vocab()?, max_seq_len: c.n_ctx - 1, causal: c.causal };
            Some(parse_input(i, &settings)?)
        }
        None => None,
    };
    let figures = crate::show::figures(&model, input.as_deref())?;
    let files = render(&figures, args.format)?;
    write_dir(&args.out, &files)?;
    println!("{}: {} pictures in {}", model.meta.program, files.len(), args.out.display());
    for (f, (file, _)) in figures.iter().zip(&files) {
        if !f.name.starts_with("heads/") {
            println!("  {file:14} {}", f.caption);
        }
    }
    let heads = figures.iter().filter(|f| f.name.starts_with("heads/")).count();
    if heads > 0 {
        println!("  {:14} W_QK and W_OV of every head ({heads} heatmaps) on residual labels", "heads/");
    }
    if model.meta.residual.is_none() {
        println!("  (no residual chart: the residual basis is rotated or compressed)");
    }
    Ok(())
}
