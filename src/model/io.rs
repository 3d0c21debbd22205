//! The model on disk (docs/EXPORT_FORMAT.md): a directory with
//! `model.safetensors` (TransformerLens HookedTransformer names and shapes),
//! `config.json` (HookedTransformerConfig fields) and `tracr_opt.json`
//! (everything needed to encode inputs and decode outputs).
//!
//! Writing is atomic: all files go to a temporary sibling directory that is
//! renamed into place, so a failed or interrupted write leaves nothing in the
//! output directory.

use super::{Config, Layer, Meta, Model};
use crate::diagnostic::{Error, Result};
use crate::files::Contents;
use ndarray::{Array2, Array3, ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// The precision of the stored weights (the model computes in f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DType {
    /// 32-bit floats (TransformerLens's default).
    F32,
    /// 64-bit floats: the weights exactly as computed.
    F64,
}

impl DType {
    /// The name torch and numpy give it: `float32`, `float64`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
}

/// One tensor of the file: the model's weights, or zeros (the biases).
enum Source<'a> {
    Weights(ArrayViewD<'a, f64>),
    Zeros(Vec<usize>),
}

impl Source<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Source::Weights(a) => a.shape(),
            Source::Zeros(s) => s,
        }
    }

    fn to_owned(&self) -> ArrayD<f64> {
        match self {
            Source::Weights(a) => a.to_owned(),
            Source::Zeros(s) => ArrayD::zeros(IxDyn(s)),
        }
    }
}

/// The tensors of a model by TransformerLens name, zero biases included,
/// without copying the weights.
fn sources(m: &Model) -> Vec<(String, Source<'_>)> {
    let c = &m.config;
    let w = Source::Weights;
    let mut t = vec![
        ("embed.W_E".to_string(), w(m.w_e.view().into_dyn())),
        ("pos_embed.W_pos".into(), w(m.w_pos.view().into_dyn())),
    ];
    for (l, layer) in m.layers.iter().enumerate() {
        let p = format!("blocks.{l}.");
        t.push((format!("{p}attn.W_Q"), w(layer.w_q.view().into_dyn())));
        t.push((format!("{p}attn.W_K"), w(layer.w_k.view().into_dyn())));
        t.push((format!("{p}attn.W_V"), w(layer.w_v.view().into_dyn())));
        t.push((format!("{p}attn.W_O"), w(layer.w_o.view().into_dyn())));
        for b in ["b_Q", "b_K", "b_V"] {
            t.push((format!("{p}attn.{b}"), Source::Zeros(vec![c.n_heads, c.d_head])));
        }
        t.push((format!("{p}attn.b_O"), Source::Zeros(vec![c.d_model])));
        t.push((format!("{p}mlp.W_in"), w(layer.w_in.view().into_dyn())));
        t.push((format!("{p}mlp.b_in"), Source::Zeros(vec![c.d_mlp])));
        t.push((format!("{p}mlp.W_out"), w(layer.w_out.view().into_dyn())));
        t.push((format!("{p}mlp.b_out"), Source::Zeros(vec![c.d_model])));
    }
    t.push(("unembed.W_U".into(), w(m.w_u.view().into_dyn())));
    t.push(("unembed.b_U".into(), Source::Zeros(vec![c.d_vocab_out])));
    t
}

/// The tensors of a model by TransformerLens name, zero biases included.
pub fn tensors(m: &Model) -> BTreeMap<String, ArrayD<f64>> {
    sources(m).into_iter().map(|(k, s)| (k, s.to_owned())).collect()
}

/// A tensor as safetensors writes it: converted to the stored precision
/// when its turn comes, so one tensor's bytes are in memory at a time.
struct Stored<'a> {
    source: Source<'a>,
    dtype: DType,
}

impl safetensors::View for Stored<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            DType::F32 => Dtype::F32,
            DType::F64 => Dtype::F64,
        }
    }

    fn shape(&self) -> &[usize] {
        self.source.shape()
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let bytes: Vec<u8> = match (&self.source, self.dtype) {
            (Source::Weights(a), DType::F32) => a.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect(),
            (Source::Weights(a), DType::F64) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            (Source::Zeros(_), _) => vec![0; self.data_len()],
        };
        bytes.into()
    }

    fn data_len(&self) -> usize {
        let size = match self.dtype {
            DType::F32 => 4,
            DType::F64 => 8,
        };
        self.source.shape().iter().product::<usize>() * size
    }
}

/// Writes model.safetensors to `path`, a tensor at a time.
fn write_safetensors(m: &Model, dtype: DType, path: &Path) -> Result<()> {
    let stored = sources(m).into_iter().map(|(k, source)| (k, Stored { source, dtype }));
    // one key only: safetensors writes its metadata map in hash order, and the
    // output must be byte-identical across runs (the producer is in tracr_opt.json)
    let meta = [("format".to_string(), "pt".to_string())].into();
    let fail = |e: &dyn std::fmt::Display| Error::usage(format!("cannot write {}: {e}", path.display()));
    // safetensors writes through a private (0600) temporary file: keep the
    // permissions a plain create gives, as for the other files
    let permissions = std::fs::File::create(path).and_then(|f| f.metadata()).map_err(|e| fail(&e))?.permissions();
    safetensors::serialize_to_file(stored, Some(meta), path).map_err(|e| fail(&e))?;
    std::fs::set_permissions(path, permissions).map_err(|e| fail(&e))
}

/// HookedTransformerConfig fields.
pub fn hooked_config(c: &Config) -> serde_json::Value {
    serde_json::json!({
        "n_layers": c.n_layers,
        "d_model": c.d_model,
        "n_ctx": c.n_ctx,
        "d_head": c.d_head,
        "n_heads": c.n_heads,
        "d_mlp": c.d_mlp,
        "d_vocab": c.d_vocab,
        "d_vocab_out": c.d_vocab_out,
        "act_fn": "relu",
        "normalization_type": null,
        "attention_dir": if c.causal { "causal" } else { "bidirectional" },
        "positional_embedding_type": "standard",
        "attn_only": false,
        "default_prepend_bos": false,
    })
}

/// The metadata files' contents (config.json, tracr_opt.json, circuit.json), in memory.
fn metadata_files(m: &Model, dtype: DType) -> Result<Vec<(String, Vec<u8>)>> {
    let pretty = |v: &serde_json::Value| -> Result<Vec<u8>> {
        let mut s = serde_json::to_string_pretty(v).map_err(|e| Error::internal(e.to_string()))?;
        s.push('\n');
        Ok(s.into_bytes())
    };
    // config.json holds HookedTransformerConfig fields only, so that
    // `HookedTransformerConfig(**config)` loads it unchanged; the stored
    // precision goes with tracr-opt's own metadata
    let config = hooked_config(&m.config);
    let mut meta = m.meta.clone();
    meta.dtype = Some(dtype.name().to_string());
    let meta_json = serde_json::to_value(&meta).map_err(|e| Error::internal(e.to_string()))?;
    let mut files = vec![("config.json".to_string(), pretty(&config)?), ("tracr_opt.json".into(), pretty(&meta_json)?)];
    if let Some(c) = &m.circuit {
        files.push((
            CIRCUIT_FILE.into(),
            pretty(&serde_json::to_value(c).map_err(|e| Error::internal(e.to_string()))?)?,
        ));
    }
    Ok(files)
}

/// Writes the model directory atomically.
pub fn save(m: &Model, dir: &Path, dtype: DType) -> Result<()> {
    save_with(m, dir, dtype, &[])
}

/// The circuit map's file name (docs/EXPORT_FORMAT.md).
pub const CIRCUIT_FILE: &str = "circuit.json";

/// Entries a model directory may hold besides its three files: SVG figures
/// (`figures/`), written with it by `compress`.
pub const EXTRA_ENTRIES: [&str; 1] = ["figures"];

/// Writes the model directory atomically, with `extras` (relative path,
/// contents) beside its three files; their first path component must be one
/// of [`EXTRA_ENTRIES`].
pub fn save_with(m: &Model, dir: &Path, dtype: DType, extras: &[(String, Vec<u8>)]) -> Result<()> {
    let mut files = metadata_files(m, dtype)?;
    for (name, bytes) in extras {
        let first = Path::new(name).components().next().map(|c| c.as_os_str().to_string_lossy().to_string());
        if !first.as_deref().is_some_and(|f| EXTRA_ENTRIES.contains(&f)) || name.contains("..") {
            return Err(Error::internal(format!("{name} is not a model directory entry")));
        }
        files.push((name.clone(), bytes.clone()));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::usage(format!("{} exists and is not a directory", dir.display())));
    }
    // an existing directory is replaced whole, so it must be one of ours
    if dir.is_dir() {
        let ours = ["model.safetensors", "config.json", "tracr_opt.json", CIRCUIT_FILE, EXTRA_ENTRIES[0]];
        let entries: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .collect();
        if !entries.is_empty()
            && (!entries.iter().any(|e| e == "tracr_opt.json") || entries.iter().any(|e| !ours.contains(&e.as_str())))
        {
            return Err(Error::usage(format!(
                "{} exists and is not a tracr-opt model directory; choose a new or empty --out directory",
                dir.display()
            )));
        }
    }
    let mut contents: Vec<(String, Contents)> = vec![(
        "model.safetensors".into(),
        Contents::Writer(Box::new(move |path: &Path| write_safetensors(m, dtype, path))),
    )];
    contents.extend(files.iter().map(|(name, bytes)| (name.clone(), Contents::Bytes(bytes))));
    crate::files::write_dir_atomic_with(dir, &contents)
}

/// Refuses metadata that does not fit the weights' shapes: a model run with
/// it would decode wrong answers without a word.
fn check_meta(dir: &Path, c: &Config, meta: &Meta) -> Result<()> {
    let bad = |what: String| Err(Error::usage(format!("{}: inconsistent model directory: {what}", dir.display())));
    if meta.tokens.len() != c.d_vocab {
        return bad(format!(
            "tracr_opt.json lists {} tokens but config.json has d_vocab {}",
            meta.tokens.len(),
            c.d_vocab
        ));
    }
    if meta.bos_id >= c.d_vocab || meta.pad_id >= c.d_vocab || meta.bos_id == meta.pad_id {
        return bad(format!(
            "bos_id {} and pad_id {} must be distinct token ids below {}",
            meta.bos_id, meta.pad_id, c.d_vocab
        ));
    }
    let outputs = match &meta.output {
        super::Decoder::Categorical { values } => values.len(),
        super::Decoder::Numerical => 1,
    };
    if outputs != c.d_vocab_out {
        return bad(format!(
            "the output decoder has {outputs} column(s) but the unembedding has d_vocab_out {}",
            c.d_vocab_out
        ));
    }
    if meta.residual_labels.len() != c.d_model {
        return bad(format!("{} residual labels for d_model {}", meta.residual_labels.len(), c.d_model));
    }
    if meta.layers.len() != c.n_layers {
        return bad(format!(
            "tracr_opt.json describes {} layers, config.json has n_layers {}",
            meta.layers.len(),
            c.n_layers
        ));
    }
    if c.n_ctx == 0 {
        return bad("n_ctx is 0".into());
    }
    Ok(())
}

/// In the compiler's basis (not rotated, not compressed) the unembedding
/// reads each output value from the one residual dimension labelled
/// `<output>:<value>` (`<output>` for a numerical output) with weight 1, and
/// reads nothing where no dimension holds that value. A W_U that does
/// anything else (negated, moved, emptied), or output values that do not
/// match the labels, is refused: the model would decode wrong answers.
fn check_unembedding(dir: &Path, meta: &Meta, w_u: &Array2<f64>) -> Result<()> {
    if meta.rotation.is_some() || meta.compression.is_some() {
        return Ok(()); // a dense basis: W_U is checked by its shape only
    }
    let expected: Vec<String> = match &meta.output {
        super::Decoder::Categorical { values } => values
            .iter()
            .map(|v| {
                crate::rasp::json::value_from_json(v)
                    .map(|v| format!("{}:{}", meta.output_label, v.display()))
                    .map_err(|e| Error::usage(format!("{}: tracr_opt.json output value {v}: {e}", dir.display())))
            })
            .collect::<Result<_>>()?,
        super::Decoder::Numerical => vec![meta.output_label.clone()],
    };
    // a residual label lists its occupants over time: "a:1 [L0.mlp..L1.attn] | out:x [L1.mlp..]"
    let holds = |label: &str, want: &str| label.split(" | ").any(|seg| seg.split(" [").next() == Some(want));
    for (j, want) in expected.iter().enumerate() {
        let dim = meta.residual_labels.iter().position(|l| holds(l, want));
        for (r, w) in w_u.column(j).iter().enumerate() {
            let should = if Some(r) == dim { 1.0 } else { 0.0 };
            if *w != should {
                return Err(Error::usage(format!(
                    "{}: inconsistent model directory: unembed.W_U[{r}, {j}] is {w}, but output column {j} ({want}) {}",
                    dir.display(),
                    match dim {
                        Some(d) => format!(
                            "reads residual dimension {d} ({}) with weight 1 and nothing else",
                            meta.residual_labels[d]
                        ),
                        None => "has no residual dimension, so reads nothing".to_string(),
                    }
                )));
            }
        }
    }
    Ok(())
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(file)).map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.join(file).display())))
}

/// Loads a model directory written by `save`, from its files alone.
pub fn load(dir: &Path) -> Result<Model> {
    let circuit = if dir.join(CIRCUIT_FILE).exists() { Some(read(dir, CIRCUIT_FILE)?) } else { None };
    let files = Files {
        meta: &read(dir, "tracr_opt.json")?,
        config: &read(dir, "config.json")?,
        circuit: circuit.as_deref(),
        weights: &read(dir, "model.safetensors")?,
    };
    from_files(dir, &files)
}

/// A model directory's files, as bytes.
pub struct Files<'a> {
    /// `tracr_opt.json`
    pub meta: &'a [u8],
    /// `config.json`
    pub config: &'a [u8],
    /// `circuit.json`, when there is one
    pub circuit: Option<&'a [u8]>,
    /// `model.safetensors`
    pub weights: &'a [u8],
}

/// Builds a model from a directory's files, checking each against the others
/// as [`load`] does; `dir` names them in messages. (The model-directory fuzz
/// target calls this without touching the disk.)
pub fn from_files(dir: &Path, files: &Files) -> Result<Model> {
    let meta: Meta = serde_json::from_slice(files.meta)
        .map_err(|e| Error::usage(format!("{}: invalid tracr_opt.json: {e}", dir.display())))?;
    let cfg: serde_json::Value = serde_json::from_slice(files.config)
        .map_err(|e| Error::usage(format!("{}: invalid config.json: {e}", dir.display())))?;
    let field = |k: &str| -> Result<usize> {
        cfg[k]
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| Error::usage(format!("{}: config.json lacks {k}", dir.display())))
    };
    let config = Config {
        n_layers: field("n_layers")?,
        d_model: field("d_model")?,
        n_heads: field("n_heads")?,
        d_head: field("d_head")?,
        d_mlp: field("d_mlp")?,
        n_ctx: field("n_ctx")?,
        d_vocab: field("d_vocab")?,
        d_vocab_out: field("d_vocab_out")?,
        causal: cfg["attention_dir"] == "causal",
    };
    check_meta(dir, &config, &meta)?;
    let circuit = if let Some(bytes) = files.circuit {
        let c: super::circuit::Circuit = serde_json::from_slice(bytes)
            .map_err(|e| Error::usage(format!("{}: invalid {CIRCUIT_FILE}: {e}", dir.display())))?;
        c.check(&config).map_err(|what| {
            Error::usage(format!("{}: inconsistent model directory: {CIRCUIT_FILE} {what}", dir.display()))
        })?;
        Some(c)
    } else {
        None
    };
    let st = SafeTensors::deserialize(files.weights)
        .map_err(|e| Error::usage(format!("{}: invalid model.safetensors: {e}", dir.display())))?;
    let get = |name: &str, shape: &[usize]| -> Result<ArrayD<f64>> {
        let t = st.tensor(name).map_err(|e| Error::usage(format!("{}: tensor {name}: {e}", dir.display())))?;
        if t.shape() != shape {
            return Err(Error::usage(format!(
                "{}: tensor {name} has shape {:?}, expected {shape:?}",
                dir.display(),
                t.shape()
            )));
        }
        let data: Vec<f64> = match t.dtype() {
            Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            other => {
                return Err(Error::usage(format!("{}: tensor {name} has unsupported dtype {other:?}", dir.display())))
            }
        };
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::internal(e.to_string()))
    };
    let two = |a: ArrayD<f64>| -> Array2<f64> { a.into_dimensionality().expect("checked shape") };
    let three = |a: ArrayD<f64>| -> Array3<f64> { a.into_dimensionality().expect("checked shape") };
    let (d, h, k, m) = (config.d_model, config.n_heads, config.d_head, config.d_mlp);
    let mut layers = Vec::new();
    for l in 0..config.n_layers {
        let p = format!("blocks.{l}.");
        layers.push(Layer {
            w_q: three(get(&format!("{p}attn.W_Q"), &[h, d, k])?),
            w_k: three(get(&format!("{p}attn.W_K"), &[h, d, k])?),
            w_v: three(get(&format!("{p}attn.W_V"), &[h, d, k])?),
            w_o: three(get(&format!("{p}attn.W_O"), &[h, k, d])?),
            w_in: two(get(&format!("{p}mlp.W_in"), &[d, m])?),
            w_out: two(get(&format!("{p}mlp.W_out"), &[m, d])?),
        });
    }
    let w_u = two(get("unembed.W_U", &[d, config.d_vocab_out])?);
    check_unembedding(dir, &meta, &w_u)?;
    Ok(Model {
        w_e: two(get("embed.W_E", &[config.d_vocab, d])?),
        w_pos: two(get("pos_embed.W_pos", &[config.n_ctx, d])?),
        w_u,
        layers,
        config,
        meta,
        circuit,
    })
}
