//! The bundled program library: Tracr's own library, reimplemented in `.rasp`
//! and embedded in the binary. Each file declares the vocab and max_seq_len
//! that Tracr's reference measurements used.

pub mod random;

use crate::diagnostic::SourceFile;
use std::sync::Arc;

/// A program shipped with tracr-opt (`src/library/programs/*.rasp`).
pub struct Bundled {
    /// The name `tracr-opt list` shows and commands take.
    pub name: &'static str,
    /// One line on what it computes.
    pub summary: &'static str,
    /// The `.rasp` text.
    pub source: &'static str,
    /// The program of `../shared/reference/tracr_reference.json` this
    /// reimplements ("" for programs Tracr cannot compile).
    pub tracr_name: &'static str,
}

macro_rules! bundled {
    ($name:literal, $tracr:literal, $summary:literal) => {
        Bundled {
            name: $name,
            summary: $summary,
            source: include_str!(concat!("programs/", $name, ".rasp")),
            tracr_name: $tracr,
        }
    };
}

/// Every bundled program, in `tracr-opt list` order.
pub const PROGRAMS: &[Bundled] = &[
    bundled!("length", "make_length", "length of the input at every position"),
    bundled!("reverse", "make_reverse", "the input reversed"),
    bundled!("pair_balance", "make_pair_balance", "running balance of '(' minus ')', as fractions of the prefix"),
    bundled!("shuffle_dyck", "make_shuffle_dyck(['()'])", "is the input a balanced string of ( and )? (1 pair)"),
    bundled!("shuffle_dyck2", "make_shuffle_dyck2", "shuffle-Dyck with 2 pairs: () and {}"),
    bundled!("shuffle_dyck3", "make_shuffle_dyck(['()','{}','[]'])", "shuffle-Dyck with 3 pairs: (), {} and []"),
    bundled!("hist", "make_hist", "how often each position's token occurs in the input"),
    bundled!("sort_unique", "make_sort_unique", "sort tokens that are all distinct"),
    bundled!("sort", "make_sort", "sort tokens, duplicates allowed (ties broken by position)"),
    bundled!("sort_freq", "make_sort_freq", "tokens sorted by descending frequency"),
    bundled!("frac_prevs", "make_frac_prevs", "fraction of the prefix that is the token 'x'"),
    bundled!("shift_by", "shift_by", "the input shifted right by one position"),
    bundled!("detect_pattern", "detect_pattern", "does the pattern 'abc' end at this position?"),
    bundled!("count_less_freq", "make_count_less_freq", "how many tokens occur at most twice"),
    bundled!("count", "make_count", "how many times the token 'a' occurs"),
    bundled!("composite_select", "", "selectors combined with &, ~ and | over different s-ops (Tracr refuses them)"),
    bundled!(
        "nary_sequencemap",
        "make_nary_sequencemap",
        "x + y - z over (tokens, tokens, indices) as a chain of SequenceMaps"
    ),
];

/// The bundled program called `name`.
pub fn find(name: &str) -> Option<&'static Bundled> {
    PROGRAMS.iter().find(|b| b.name == name)
}

/// The program's text as a source file named after it (for messages).
pub fn source_file(b: &Bundled) -> Arc<SourceFile> {
    Arc::new(SourceFile { name: format!("<bundled>/{}.rasp", b.name), text: b.source.to_string() })
}

/// Tracr's own measurements of its library (vocab, max_seq_len, causal, model
/// shape, compile time), extracted from the shared reference by
/// `src/library/extract_reference.py`.
pub const TRACR_REFERENCE: &str = include_str!("tracr_reference.json");

/// What Tracr built for one program at one setting.
#[derive(Clone, Debug, PartialEq)]
pub struct TracrFigures {
    /// Layers.
    pub layers: usize,
    /// Most heads in a layer.
    pub heads: usize,
    /// Residual width.
    pub d_model: usize,
    /// Tracr's head width (its key size; values are padded to it).
    pub d_head: usize,
    /// Widest MLP.
    pub d_mlp: usize,
    /// Dense parameters.
    pub params: usize,
    /// Nonzero parameters.
    pub nonzero_params: usize,
    /// Tracr's compile time (median), in milliseconds.
    pub compile_ms: f64,
}

/// Tracr's figures for a bundled program, when Tracr measured it at exactly
/// these settings.
pub fn tracr_figures(b: &Bundled, settings: &crate::rasp::Settings) -> Option<TracrFigures> {
    let reference: serde_json::Value = serde_json::from_str(TRACR_REFERENCE).ok()?;
    let entry = reference["programs"].as_array()?.iter().find(|e| {
        e["name"] == b.tracr_name
            && e["causal"] == settings.causal
            && e["max_seq_len"].as_u64() == Some(settings.max_seq_len as u64)
            && e["vocab"].as_array().is_some_and(|v| {
                let mut vocab: Vec<crate::value::Value> =
                    v.iter().filter_map(|x| crate::rasp::json::value_from_json(x).ok()).collect();
                vocab.sort();
                vocab == settings.vocab
            })
    })?;
    let n = |k: &str| entry[k].as_u64().map(|x| x as usize);
    Some(TracrFigures {
        layers: n("layers")?,
        heads: n("heads")?,
        d_model: n("d_model")?,
        d_head: n("key_size")?,
        d_mlp: n("mlp_hidden")?,
        params: n("params")?,
        nonzero_params: n("nonzero_params")?,
        compile_ms: entry["compile_seconds_median"].as_f64()? * 1e3,
    })
}
