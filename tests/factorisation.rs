//! The factorisation pass (src/compiler/factorise.rs): every head at the rank
//! of its W_QK and W_OV, computed here independently (Gaussian elimination with
//! full pivoting on the dense products of the unfactorised model), the same
//! products to rounding, MLPs never wider, and the models still exact.

mod common;

use common::*;
use ndarray::{s, Array2};
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::{compile, Options};
use tracr_opt::library::PROGRAMS;
use tracr_opt::model::Model;
use tracr_opt::verify::{inputs_for, max_logit_difference, verify, Plan};

/// Rank by Gaussian elimination with full pivoting; entries below
/// `1e-9 · max|A|` count as zero (compiled weights are far from that).
fn rank(a: &Array2<f64>) -> usize {
    let mut m = a.clone();
    let tol = 1e-9 * m.iter().fold(0.0f64, |x, y| x.max(y.abs())).max(1.0);
    let (rows, cols) = m.dim();
    let mut r = 0;
    while r < rows.min(cols) {
        let mut best = (r, r, 0.0f64);
        for i in r..rows {
            for j in r..cols {
                if m[[i, j]].abs() > best.2 {
                    best = (i, j, m[[i, j]].abs());
                }
            }
        }
        if best.2 <= tol {
            break;
        }
        for j in 0..cols {
            m.swap([r, j], [best.0, j]);
        }
        for i in 0..rows {
            m.swap([i, r], [i, best.1]);
        }
        for i in r + 1..rows {
            let f = m[[i, r]] / m[[r, r]];
            for j in r..cols {
                let x = m[[r, j]];
                m[[i, j]] -= f * x;
            }
        }
        r += 1;
    }
    r
}

/// W_Q W_Kᵀ (without the sqrt(d_head) folded into W_Q) and W_V W_O of one head.
fn products(m: &Model, l: usize, h: usize) -> (Array2<f64>, Array2<f64>) {
    let layer = &m.layers[l];
    let q = layer.w_q.slice(s![h, .., ..]).to_owned() / (m.config.d_head as f64).sqrt();
    let k = layer.w_k.slice(s![h, .., ..]);
    let v = layer.w_v.slice(s![h, .., ..]);
    let o = layer.w_o.slice(s![h, .., ..]);
    (q.dot(&k.t()), v.dot(&o))
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0f64, |x, y| x.max(y.abs()))
}

#[test]
fn d_head_is_the_largest_true_rank_and_products_are_unchanged() {
    for b in PROGRAMS {
        let p = bundled(b.name);
        let s = p.settings.clone().unwrap();
        // one residual layout for both, so their weights compare column by column
        let options = Options { share_residual: false, ..Options::default() };
        let c = compile(&p, &s, &Heuristic, &options).unwrap();
        let reference = c.reference().unwrap().expect("an optimised compile keeps its unoptimised reference");
        let mut largest = 0;
        for (l, info) in c.model.meta.layers.iter().enumerate() {
            for (h, head) in info.heads.iter().enumerate() {
                let ctx = format!("{} L{l} head {h} ({})", b.name, head.node);
                let (qk_ref, ov_ref) = products(reference, l, h);
                let (qk, ov) = products(&c.model, l, h);
                assert!(max_abs(&(&qk - &qk_ref)) <= 1e-9 * max_abs(&qk_ref).max(1.0), "{ctx}: W_QK changed");
                assert!(max_abs(&(&ov - &ov_ref)) <= 1e-9 * max_abs(&ov_ref).max(1.0), "{ctx}: W_OV changed");
                assert_eq!(head.qk_rank, rank(&qk_ref), "{ctx}: qk rank");
                assert_eq!(head.ov_rank, rank(&ov_ref), "{ctx}: ov rank");
                largest = largest.max(head.qk_rank).max(head.ov_rank);
            }
        }
        assert_eq!(c.model.config.d_head, largest.max(1), "{}: d_head", b.name);
        assert!(c.model.config.d_head <= reference.config.d_head, "{}: d_head grew", b.name);
        assert!(c.model.config.d_mlp <= reference.config.d_mlp, "{}: d_mlp grew", b.name);
    }
}

#[test]
fn reverse_head_is_at_most_6_wide_against_tracrs_12() {
    let tracr = reference()["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "make_reverse" && e["causal"] == false)
        .map(|e| e["key_size"].as_u64().unwrap())
        .unwrap();
    assert_eq!(tracr, 12);
    let p = bundled("reverse");
    let c = compile(&p, &p.settings.clone().unwrap(), &Heuristic, &Options::default()).unwrap();
    assert!(c.model.config.d_head <= 6, "reverse d_head {}", c.model.config.d_head);
    let ranks: Vec<(usize, usize)> =
        c.model.meta.layers.iter().flat_map(|l| l.heads.iter().map(|h| (h.qk_rank, h.ov_rank))).collect();
    // length's all-true selector reads one summed key direction (+ BOS); the
    // reverse head selects one of 5 positions (+ BOS) and moves 3 tokens
    assert_eq!(ranks, vec![(2, 1), (6, 3)]);
}

#[test]
fn discretisers_lose_their_silent_neurons() {
    // shuffle_dyck's numerical-to-categorical maps have, in Tracr's layout,
    // one neuron pair per gap between possible input values, most of them
    // writing nothing; optimised, only the pairs where the output changes
    // are built (and factorisation finds nothing silent left)
    for name in ["shuffle_dyck", "shuffle_dyck2", "shuffle_dyck3"] {
        let p = bundled(name);
        let s = p.settings.clone().unwrap();
        let plain = compile(&p, &s, &Heuristic, &Options::none()).unwrap().model;
        let c = compile(&p, &s, &Heuristic, &Options::default()).unwrap();
        assert!(
            c.model.config.d_mlp * 5 < plain.config.d_mlp,
            "{name}: {} vs {}",
            c.model.config.d_mlp,
            plain.config.d_mlp
        );
        assert!(c.model.params() < plain.params());
    }
}

#[test]
fn factorised_models_output_the_same_logits() {
    for name in ["reverse", "sort", "shuffle_dyck", "frac_prevs", "sort_freq"] {
        let p = bundled(name);
        let s = p.settings.clone().unwrap();
        let c = compile(&p, &s, &Heuristic, &Options::default()).unwrap();
        let (inputs, exhaustive) = inputs_for(&s.vocab, s.max_seq_len, &Plan { samples: 0, seed: 0, threads: 0 });
        assert!(verify(&c.model, &c.tabulated, &inputs, exhaustive).ok(), "{name}");
        let diff = max_logit_difference(&c.model, c.reference().unwrap().unwrap(), &inputs, 0).unwrap();
        eprintln!("{name}: max |logit difference| from the unfactorised model {diff:.1e}");
        assert!(diff <= 1e-9, "{name}: {diff}");
    }
}

#[test]
fn no_factorise_keeps_tracr_layout() {
    let p = bundled("shuffle_dyck");
    let s = p.settings.clone().unwrap();
    let c = compile(&p, &s, &Heuristic, &Options::none()).unwrap();
    assert!(c.reference().unwrap().is_none());
    // the widest MLP holds `balance < 0` and `balance == 0`, each a
    // discretiser of one neuron and a pair per gap between balance's values
    let vs = tracr_opt::rasp::valueset::infer(&p, &s.vocab, s.max_seq_len).unwrap();
    let balance = p.nodes.iter().position(|n| n.label == "balance").unwrap();
    let values = vs.of(balance).len();
    assert!(values > 10, "balance has {values} values");
    assert_eq!(c.model.config.d_mlp, 2 * (1 + 2 * (values - 1)));
}

/// FNV-1a, 64 bits: a fingerprint of a file's bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn faster_factorisation_writes_the_same_bytes_for_sort_at_20_and_40() {
    // model.safetensors and config.json (f32, as `compile --out` writes them) and the
    // head ranks of sort with a 10-token vocab, recorded before the grouping pass
    // learnt to compare only lines of one support: the speed-up changes nothing
    let recorded: [(usize, u64, u64, &str); 2] = [
        (20, 0xa7ea_d9f4_47c8_b25a, 0x3f90_66a8_8193_0c7d, "[[],[200],[21]] / [[],[1],[10]]"),
        (40, 0xc338_0ae8_4cca_d266, 0x9719_5124_775a_0db7, "[[],[400],[41]] / [[],[1],[10]]"),
    ];
    let p = tracr_opt::Program::load("sort").unwrap();
    let vocab: Vec<tracr_opt::value::Value> = (1..=10).map(tracr_opt::value::Value::Int).collect();
    for (max_seq_len, weights, config, ranks) in recorded {
        let s = p.settings_with(Some(vocab.clone()), Some(max_seq_len), None).unwrap();
        let c = tracr_opt::compile(&p, &s, &tracr_opt::CompileOptions::default()).unwrap();
        let j = c.summary_json(None);
        assert_eq!(format!("{} / {}", j["qk_ranks"], j["ov_ranks"]), ranks);
        let dir = std::env::temp_dir().join(format!("tracr-opt-sort{max_seq_len}-{}", std::process::id()));
        c.save(&dir, tracr_opt::DType::F32).unwrap();
        let got = (
            fnv(&std::fs::read(dir.join("model.safetensors")).unwrap()),
            fnv(&std::fs::read(dir.join("config.json")).unwrap()),
        );
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("sort at {max_seq_len}: weights {:#x}, config {:#x}", got.0, got.1);
        assert_eq!(got, (weights, config), "sort at max_seq_len {max_seq_len}: the written model changed");
    }
}
