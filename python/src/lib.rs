//! `tracr_opt._native`: the tracr-opt library inside Python.
//!
//! This is a thin layer over the crate's public API (`tracr_opt::compile`,
//! `Compiled::verify`, `Model::save`, …). Values cross the boundary as JSON
//! text in the program format's encoding (tuples as arrays), and weights as
//! little-endian f64 bytes that `python/tracr_opt` turns into numpy arrays, so
//! this crate needs no numpy bindings. Every call runs under `catch_unwind`:
//! a bug in tracr-opt becomes an `InternalError` exception, never a panic
//! or an abort in the user's interpreter.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Deserialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use tracr_opt::rasp::json::{value_from_json, value_to_json};
use tracr_opt::{AllocatorKind, CompileOptions, Compiled, DType, Model, Objective, Program, Value, VerifyOptions};

create_exception!(_native, TracrOptError, PyException, "Any error tracr-opt reports; the message says where and why.");
create_exception!(
    _native,
    ProgramError,
    TracrOptError,
    "A problem with the program: its text (file:line:col), an s-op, or a value a function raises on."
);
create_exception!(_native, UsageError, TracrOptError, "Bad arguments: an option, a setting, a token or a path.");
create_exception!(
    _native,
    InternalError,
    TracrOptError,
    "A bug in tracr-opt (please report it with the call that caused it)."
);

/// The error as the matching Python exception, with the CLI's message.
fn to_py(e: tracr_opt::Error) -> PyErr {
    let text = e.to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
    match e {
        tracr_opt::Error::Source { .. } | tracr_opt::Error::Program { .. } => ProgramError::new_err(text),
        tracr_opt::Error::Usage { .. } => UsageError::new_err(text),
        tracr_opt::Error::Internal { .. } => InternalError::new_err(text),
    }
}

/// Runs `f` without the GIL (compiles may take seconds; other Python threads
/// go on), turning errors and panics into exceptions.
fn guarded<T: Send>(py: Python<'_>, f: impl FnOnce() -> tracr_opt::Result<T> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(InternalError::new_err(format!(
                "{what}\n(this is a bug in tracr-opt; please report it with the call that caused it)"
            )))
        }
    }
}

fn json_err(what: &str, e: serde_json::Error) -> tracr_opt::Error {
    tracr_opt::Error::usage(format!("{what}: {e}"))
}

fn values_from(text: &str, what: &str) -> tracr_opt::Result<Vec<Value>> {
    let j: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| json_err(what, e))?;
    j.iter().map(value_from_json).collect()
}

fn values_json(values: &[Value]) -> tracr_opt::Result<serde_json::Value> {
    Ok(serde_json::Value::Array(values.iter().map(value_to_json).collect::<tracr_opt::Result<Vec<_>>>()?))
}

fn values_to(values: &[Value]) -> tracr_opt::Result<String> {
    Ok(values_json(values)?.to_string())
}

/// The compile options as Python passes them (keyword arguments, as JSON).
/// Unknown names are refused, so a typo never goes unnoticed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    allocator: Option<String>,
    minimise: Option<String>,
    time_limit: Option<f64>,
    emit_lp: Option<String>,
    factorise: Option<bool>,
    rewrites: Option<bool>,
    cse: Option<bool>,
    fold: Option<bool>,
    fuse: Option<bool>,
    max_mlp_width: Option<usize>,
    rule_tables: Option<bool>,
    share_heads: Option<bool>,
    share_residual: Option<bool>,
    spread_neurons: Option<bool>,
    rotate: Option<u64>,
    max_weights_gb: Option<f64>,
}

impl Options {
    fn compile_options(self) -> tracr_opt::Result<CompileOptions> {
        let d = CompileOptions::default();
        Ok(CompileOptions {
            allocator: match self.allocator.as_deref() {
                None | Some("ilp") => AllocatorKind::Ilp,
                Some("heuristic") => AllocatorKind::Heuristic,
                Some(other) => {
                    return Err(tracr_opt::Error::usage(format!(
                        "allocator must be 'ilp' or 'heuristic', not '{other}'"
                    )))
                }
            },
            minimise: self.minimise.as_deref().map(Objective::parse_list).transpose()?,
            time_limit_secs: self.time_limit.unwrap_or(d.time_limit_secs),
            emit_lp: self.emit_lp.map(Into::into),
            factorise: self.factorise.unwrap_or(d.factorise),
            rewrites: self.rewrites.unwrap_or(d.rewrites),
            cse: self.cse.unwrap_or(d.cse),
            fold: self.fold.unwrap_or(d.fold),
            fuse: self.fuse.unwrap_or(d.fuse),
            max_mlp_width: self.max_mlp_width,
            rule_tables: self.rule_tables.unwrap_or(d.rule_tables),
            share_heads: self.share_heads.unwrap_or(d.share_heads),
            share_residual: self.share_residual.unwrap_or(d.share_residual),
            spread_neurons: self.spread_neurons.unwrap_or(d.spread_neurons),
            rotate: self.rotate,
            max_weights_gb: self.max_weights_gb.or(d.max_weights_gb),
        })
    }
}

fn dtype(name: &str) -> tracr_opt::Result<DType> {
    match name {
        "float32" | "f32" => Ok(DType::F32),
        "float64" | "f64" => Ok(DType::F64),
        other => Err(tracr_opt::Error::usage(format!("dtype must be 'float32' or 'float64', not '{other}'"))),
    }
}

/// A compiled (or loaded) model, with what the compiler knew about it.
#[pyclass(module = "tracr_opt._native", frozen)]
struct NativeModel(Inner);

enum Inner {
    /// Compiled in this process: with the interpreter's program and the
    /// unoptimised reference, for verification.
    Compiled(Box<Compiled>),
    /// Read from a model directory: weights and metadata only.
    Loaded(Model),
}

impl NativeModel {
    fn model(&self) -> &Model {
        match &self.0 {
            Inner::Compiled(c) => &c.model,
            Inner::Loaded(m) => m,
        }
    }

    fn compiled(&self) -> tracr_opt::Result<&Compiled> {
        match &self.0 {
            Inner::Compiled(c) => Ok(c),
            Inner::Loaded(_) => Err(tracr_opt::Error::usage(
                "a model loaded from a directory carries no program to check against: compile it to verify it",
            )),
        }
    }
}

#[pymethods]
impl NativeModel {
    /// `tracr-opt compile --json`'s object (the report is added in Python).
    fn summary_json(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, || Ok(self.compiled()?.summary_json(None).to_string()))
    }

    /// The verification report as JSON.
    fn verify(&self, py: Python<'_>, samples: usize, seed: u64) -> PyResult<String> {
        guarded(py, || {
            let c = self.compiled()?;
            let r = c.verify(&VerifyOptions { samples, seed, threads: 0 })?;
            let examples = r
                .examples
                .iter()
                .map(|m| {
                    Ok(serde_json::json!({
                        "input": values_json(&m.input)?,
                        "expected": values_json(&m.expected)?,
                        "got": values_json(&m.got)?,
                        "error": m.error,
                    }))
                })
                .collect::<tracr_opt::Result<Vec<_>>>()?;
            let mut j = r.summary_json();
            j["examples"] = examples.into();
            Ok(j.to_string())
        })
    }

    /// Writes the model directory, as `tracr-opt compile --out` does.
    fn save(&self, py: Python<'_>, dir: String, dtype_name: String) -> PyResult<()> {
        guarded(py, || self.model().save(Path::new(&dir), dtype(&dtype_name)?))
    }

    /// config.json's object (HookedTransformerConfig fields) as JSON.
    fn config_json(&self) -> String {
        tracr_opt::model::io::hooked_config(&self.model().config).to_string()
    }

    /// tracr_opt.json's object as JSON.
    fn meta_json(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, || serde_json::to_string(&self.model().meta).map_err(|e| tracr_opt::Error::internal(e.to_string())))
    }

    /// circuit.json's object as JSON, or None for a model without one.
    fn circuit_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        guarded(py, || {
            self.model()
                .circuit
                .as_ref()
                .map(|c| serde_json::to_string(c).map_err(|e| tracr_opt::Error::internal(e.to_string())))
                .transpose()
        })
    }

    /// `tracr-opt show`'s pictures as (name, SVG text), with one input's
    /// residual stream when `input_json` is given.
    #[pyo3(signature = (input_json=None))]
    fn figures(&self, py: Python<'_>, input_json: Option<String>) -> PyResult<Vec<(String, String)>> {
        guarded(py, || {
            let input = input_json.map(|t| values_from(&t, "the input")).transpose()?;
            if let Some(i) = &input {
                self.model().runner()?.encode(i)?;
            }
            let figures = tracr_opt::show::figures(self.model(), input.as_deref())?;
            Ok(figures.into_iter().map(|f| (f.name, f.svg)).collect())
        })
    }

    /// Every tensor by TransformerLens name: (name, shape, little-endian f64 bytes).
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Vec<usize>, Bound<'py, PyBytes>)>> {
        let raw = guarded(py, || {
            Ok(tracr_opt::model::io::tensors(self.model())
                .into_iter()
                .map(|(k, a)| {
                    let bytes: Vec<u8> = a.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (k, a.shape().to_vec(), bytes)
                })
                .collect::<Vec<_>>())
        })?;
        Ok(raw.into_iter().map(|(k, s, b)| (k, s, PyBytes::new(py, &b))).collect())
    }

    /// One forward pass: the decoded outputs (no BOS) as a JSON array, and
    /// the logits at every position (BOS first) as (bytes, rows, cols).
    #[allow(clippy::type_complexity)]
    fn run<'py>(&self, py: Python<'py>, input_json: String) -> PyResult<(String, Bound<'py, PyBytes>, usize, usize)> {
        let (outputs, bytes, rows, cols) = guarded(py, || {
            let model = self.model();
            let input = values_from(&input_json, "the input")?;
            let runner = model.runner()?;
            let logits = runner.logits(&runner.encode(&input)?);
            let values = model.output_values()?;
            let columns = match model.meta.output {
                tracr_opt::model::Decoder::Numerical => None,
                tracr_opt::model::Decoder::Categorical { .. } => Some(values.as_slice()),
            };
            let decoded: Vec<Value> = logits
                .rows()
                .into_iter()
                .skip(1)
                .map(|row| tracr_opt::model::forward::decode(columns, &row.to_vec()).0)
                .collect();
            let (r, c) = logits.dim();
            Ok((values_to(&decoded)?, logits.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), r, c))
        })?;
        Ok((outputs, PyBytes::new(py, &bytes), rows, cols))
    }

    /// (input, interpreter output) pairs on the inputs verification uses, as
    /// JSON (compiled models only).
    fn reference_io(&self, py: Python<'_>, samples: usize, seed: u64) -> PyResult<String> {
        guarded(py, || {
            let pairs = self.compiled()?.reference_io(&VerifyOptions { samples, seed, threads: 0 })?;
            let json = pairs
                .iter()
                .map(|(input, output)| Ok(serde_json::json!([values_json(input)?, values_json(output)?])))
                .collect::<tracr_opt::Result<Vec<_>>>()?;
            Ok(serde_json::Value::Array(json).to_string())
        })
    }

    /// The interpreter's output on one input (compiled models only).
    fn evaluate(&self, py: Python<'_>, input_json: String) -> PyResult<String> {
        guarded(py, || {
            let c = self.compiled()?;
            let input = values_from(&input_json, "the input")?;
            values_to(&c.tabulated.evaluate(&input, self.model().config.causal)?)
        })
    }
}

/// Compiles a program. `kind` says what `source` is: `spec` (a bundled name
/// or a path), `rasp` (program text) or `json` (the interchange format).
#[pyfunction]
#[pyo3(signature = (kind, source, name, vocab_json, max_seq_len, causal, options_json))]
fn compile(
    py: Python<'_>,
    kind: &str,
    source: String,
    name: String,
    vocab_json: Option<String>,
    max_seq_len: Option<usize>,
    causal: Option<bool>,
    options_json: String,
) -> PyResult<NativeModel> {
    let kind = kind.to_string();
    guarded(py, move || {
        let program = match kind.as_str() {
            "spec" => Program::load(&source)?,
            "rasp" => Program::from_rasp(&name, &source)?,
            "json" => Program::from_json(&name, &source)?,
            other => return Err(tracr_opt::Error::internal(format!("unknown source kind {other}"))),
        };
        let vocab = vocab_json.as_deref().map(|v| values_from(v, "the vocab")).transpose()?;
        let settings = program.settings_with(vocab, max_seq_len, causal)?;
        let options: Options = serde_json::from_str(&options_json).map_err(|e| json_err("compile options", e))?;
        let compiled = tracr_opt::compile(&program, &settings, &options.compile_options()?)?;
        Ok(NativeModel(Inner::Compiled(Box::new(compiled))))
    })
}

/// Loads a model directory.
#[pyfunction]
fn load(py: Python<'_>, dir: String) -> PyResult<NativeModel> {
    guarded(py, || Ok(NativeModel(Inner::Loaded(Model::load(Path::new(&dir))?))))
}

/// The bundled programs: (name, description) pairs.
#[pyfunction]
fn bundled() -> Vec<(String, String)> {
    tracr_opt::library::PROGRAMS.iter().map(|b| (b.name.to_string(), b.summary.to_string())).collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TracrOptError", py.get_type::<TracrOptError>())?;
    m.add("ProgramError", py.get_type::<ProgramError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(bundled, m)?)?;
    Ok(())
}
