//! The bundled program library: Tracr's own library, reimplemented in `.rasp`
//! and embedded in the binary. Each file declares the vocab and max_seq_len
//! that Tracr's reference measurements used.

pub mod random;

use crate::diagnostic::SourceFile;
use std::sync::Arc;

pub struct Bundled {
    pub name: &'static str,
    pub summary: &'static str,
    pub source: &'static str,
    /// The program of `../shared/reference/tracr_reference.json` this reimplements.
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
    bundled!(
        "nary_sequencemap",
        "make_nary_sequencemap",
        "x + y - z over (tokens, tokens, indices) as a chain of SequenceMaps"
    ),
];

pub fn find(name: &str) -> Option<&'static Bundled> {
    PROGRAMS.iter().find(|b| b.name == name)
}

pub fn source_file(b: &Bundled) -> Arc<SourceFile> {
    Arc::new(SourceFile { name: format!("<bundled>/{}.rasp", b.name), text: b.source.to_string() })
}
