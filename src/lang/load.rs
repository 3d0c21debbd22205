//! Finds and loads a program: a bundled name, a `.rasp` file or a `.json` file.

use super::ast::ImportTarget;
use super::eval::{Evaluator, Loader, Meta};
use super::parser::parse;
use crate::diagnostic::{Error, Result, SourceFile, Span};
use crate::library;
use crate::rasp::Program;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads `spec` (bundled program name, `.rasp` path or `.json` path).
/// `output` names a top-level variable to use as the output instead of the one
/// the program's `compile(...)` declares.
pub fn load(spec: &str, output: Option<&str>) -> Result<Program> {
    let path = Path::new(spec);
    if spec.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("cannot read {spec}: {e}")))?;
        let p = crate::rasp::json::from_json(&text, spec)?;
        if output.is_some() {
            return Err(Error::usage("--output applies to .rasp programs; a JSON program names its output"));
        }
        return Ok(p);
    }
    if spec.ends_with(".rasp") || path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("cannot read {spec}: {e}")))?;
        let file = Arc::new(SourceFile { name: spec.to_string(), text });
        return load_source(file, output);
    }
    if let Some(b) = library::find(spec) {
        return load_source(library::source_file(b), output);
    }
    Err(Error::usage(format!(
        "'{spec}' is neither a file nor a bundled program (bundled: {}; see `tracr-opt list`)",
        library::PROGRAMS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
    )))
}

/// Runs `.rasp` text and returns the program it defines.
pub fn load_source(file: Arc<SourceFile>, output: Option<&str>) -> Result<Program> {
    let stmts = parse(&file)?;
    let mut builder = crate::rasp::Builder::new();
    let mut loader = FileLoader;
    let module = {
        let mut ev = Evaluator::new(&mut builder, &mut loader);
        ev.run_module(&stmts, true)?
    };
    let (settings, declared) = match module.settings {
        Some((s, out, _)) => (Some(s), out),
        None => (None, None),
    };
    let out = match output {
        Some(name) => match module.globals.vars.read().unwrap().get(name) {
            Some(Meta::SOp(id)) => *id,
            Some(_) => return Err(Error::usage(format!("--output {name}: '{name}' is not an s-op"))),
            None => return Err(Error::usage(format!("--output {name}: {} defines no variable '{name}'", file.name))),
        },
        None => declared.ok_or_else(|| {
            Error::usage(format!(
                "{}: no output s-op; end the program with compile(<output>, vocab={{...}}, max_seq_len=N) or pass --output NAME",
                file.name
            ))
        })?,
    };
    let name =
        Path::new(&file.name).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| file.name.clone());
    let mut program = builder.finish(&name, out, settings);
    program.source = Some(file.text.as_str().into());
    Ok(program)
}

/// Resolves imports: quoted paths relative to the importing file, bare names
/// to bundled programs.
struct FileLoader;

impl Loader for FileLoader {
    fn load(&mut self, target: &ImportTarget, from: &Span) -> Result<Arc<SourceFile>> {
        match target {
            ImportTarget::Bundled(name) => library::find(name)
                .map(library::source_file)
                .ok_or_else(|| Error::at(from, format!("no bundled program named '{name}' (see `tracr-opt list`)"))),
            ImportTarget::Path(p) => {
                let base: PathBuf = Path::new(&from.file.name).parent().map(Path::to_path_buf).unwrap_or_default();
                let full = base.join(p);
                let text = std::fs::read_to_string(&full)
                    .map_err(|e| Error::at(from, format!("cannot import {}: {e}", full.display())))?;
                Ok(Arc::new(SourceFile { name: full.to_string_lossy().to_string(), text }))
            }
        }
    }
}
