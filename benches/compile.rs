//! Compile time per bundled program (verification off), release mode.
//! `cargo bench --bench compile`.
//! - `compile/*`: the default pipeline (ILP allocation minimising layers,
//!   residual width, then params; every optimisation on), as `tracr-opt
//!   compile` runs it. Target
//!   < 50 ms each (Tracr: 30–250 ms warm, 4–5 s cold).
//! - `baseline/*`: Tracr's heuristic allocation, no optimisation.
//! - `factorise/*`: the factorisation pass alone on the blocks lowered from
//!   the program as written (target < 5 ms each).
//! - `dyck/*`: shuffle_dyck 1/2/3 and pair_balance at max_seq_len 10, 20,
//!   40 and 64, the default pipeline (target ≤ 5 s each at 64; docs/RESULTS.md
//!   has them beside Tracr).
//! - `long/*`: sort (vocab 1..10) and hist (vocab a b c) at max_seq_len 64,
//!   128 and 256, the default pipeline (targets: sort ≤ 2 s at 128 and ≤ 10 s
//!   at 256 with the model written; docs/RESULTS.md, "Long sequences").

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use tracr_opt::compiler::{factorise, lower, rewrite};
use tracr_opt::library::PROGRAMS;
use tracr_opt::rasp::valueset::{infer, tabulate};
use tracr_opt::{compile, CompileOptions, Program};

fn compile_bundled(c: &mut Criterion) {
    for (group_name, options) in [("compile", CompileOptions::default()), ("baseline", CompileOptions::baseline())] {
        let mut group = c.benchmark_group(group_name);
        for b in PROGRAMS {
            let p = Program::load(b.name).unwrap();
            let s = p.settings.clone().unwrap();
            group.bench_function(b.name, |bench| {
                bench.iter(|| compile(black_box(&p), black_box(&s), &options).unwrap())
            });
        }
        group.finish();
    }
}

fn factorise_bundled(c: &mut Criterion) {
    let mut group = c.benchmark_group("factorise");
    for b in PROGRAMS {
        let p = Program::load(b.name).unwrap();
        let s = p.settings.clone().unwrap();
        let vs = infer(&p, &s.vocab, s.max_seq_len).unwrap();
        let t = tabulate(&p, &vs).unwrap();
        // the program as written, but with the joint-selector rewrite, without
        // which `|` over different s-ops cannot be lowered (as in `compile`)
        let (t, vs, _) = rewrite::rewrite(&t, &vs, &s, &rewrite::RewriteOptions::none()).unwrap();
        let lowered = lower::lower(&t, &vs, &s, &lower::LowerOptions::default()).unwrap();
        group.bench_function(b.name, |bench| {
            bench.iter_batched(
                || lowered.blocks.clone(),
                |mut blocks| factorise::run(black_box(&mut blocks), &t, &vs),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn dyck_at_length(c: &mut Criterion) {
    let mut group = c.benchmark_group("dyck");
    group.sample_size(10);
    for name in ["shuffle_dyck", "shuffle_dyck2", "shuffle_dyck3", "pair_balance"] {
        let p = Program::load(name).unwrap();
        for m in [10, 20, 40, 64] {
            let s = p.settings_with(None, Some(m), None).unwrap();
            let options = CompileOptions::default();
            group.bench_function(format!("{name}/{m}"), |bench| {
                bench.iter(|| compile(black_box(&p), black_box(&s), &options).unwrap())
            });
        }
    }
    group.finish();
}

fn long_sequences(c: &mut Criterion) {
    let mut group = c.benchmark_group("long");
    group.sample_size(10);
    for (name, vocab) in [("sort", "1 2 3 4 5 6 7 8 9 10"), ("hist", "a b c")] {
        let p = Program::load(name).unwrap();
        for m in [64, 128, 256] {
            let s = tracr_opt::rasp::Settings {
                vocab: tracr_opt::value::parse_tokens(vocab),
                max_seq_len: m,
                causal: false,
            };
            let options = CompileOptions::default();
            group.bench_function(format!("{name}/{m}"), |bench| {
                bench.iter(|| compile(black_box(&p), black_box(&s), &options).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, compile_bundled, factorise_bundled, dyck_at_length, long_sequences);
criterion_main!(benches);
