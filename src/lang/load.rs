//! Finds and loads a program: a bundled name, a `.rasp` file or a `.json` file.

use super::ast::ImportTarget;
use super::eval::{Evaluator, Globals, Loader, Meta};
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
        let text = crate::files::read_text(path).map_err(|e| Error::usage(format!("cannot read {spec}: {e}")))?;
        let p = crate::rasp::json::from_json(&text, spec)?;
        if output.is_some() {
            return Err(Error::usage("--output applies to .rasp programs; a JSON program names its output"));
        }
        return Ok(p);
    }
    // a file wins over a bundled name; a directory does not (`compile sort`
    // run beside a `sort/` model directory means the bundled program)
    if spec.ends_with(".rasp") || path.is_file() {
        let text = crate::files::read_text(path).map_err(|e| Error::usage(format!("cannot read {spec}: {e}")))?;
        let file = Arc::new(SourceFile { name: spec.to_string(), text });
        return load_source(file, output);
    }
    if let Some(b) = library::find(spec) {
        return load_source(library::source_file(b), output);
    }
    if path.is_dir() {
        return Err(Error::usage(format!(
            "{spec} is a directory, not a program (a .rasp or .json file, or a bundled name; see `tracr-opt list`)"
        )));
    }
    Err(Error::usage(format!(
        "'{spec}' is neither a file nor a bundled program (bundled: {}; see `tracr-opt list`)",
        library::PROGRAMS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
    )))
}

/// Runs `.rasp` text and returns the program it defines.
pub fn load_source(file: Arc<SourceFile>, output: Option<&str>) -> Result<Program> {
    load_module(file, output).map(|(program, _)| program)
}

/// [`load_source`], with the top-level module's names.
fn load_module(file: Arc<SourceFile>, output: Option<&str>) -> Result<(Program, Arc<Globals>)> {
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
    Ok((program, module.globals))
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
                let text = crate::files::read_text(&full)
                    .map_err(|e| Error::at(from, format!("cannot import {}: {e}", full.display())))?;
                Ok(Arc::new(SourceFile { name: full.to_string_lossy().to_string(), text }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// A module's functions and names used to point at each other, so no
    /// program with a `def` was ever freed. Now the program holds the
    /// modules its functions need, and dropping it frees them.
    #[test]
    fn a_program_and_its_modules_are_freed_together() {
        let text = "import sort_unique\n\
                    def bump(x):\n    return helper(x) + 1\n\
                    def helper(x):\n    return x * 2\n\
                    doubled = Map(lambda t: bump(t), tokens)\n\
                    out = make_sort_unique(doubled, doubled)\n\
                    compile(out, vocab={1, 2, 3}, max_seq_len=3)\n";
        let file = Arc::new(SourceFile { name: "p.rasp".into(), text: text.into() });
        let (program, globals) = load_module(file, None).unwrap();
        let module = Arc::downgrade(&globals);
        let imported = Arc::downgrade(&globals.imports.read().unwrap()[0]);
        drop(globals);
        // the program's functions still reach the names they look up late
        let input = [Value::Int(3), Value::Int(1), Value::Int(2)];
        let out = crate::rasp::interp::evaluate(&program, &input, false).unwrap().output().to_vec();
        assert_eq!(out, vec![Value::Int(3), Value::Int(5), Value::Int(7)]);
        assert!(module.upgrade().is_some() && imported.upgrade().is_some(), "held by the program");
        drop(program);
        assert!(module.upgrade().is_none(), "the module outlived its program");
        assert!(imported.upgrade().is_none(), "the imported module outlived its program");
    }
}
