//! Forward-pass throughput of the Rust runner used by verification
//! (sequences per second, each of max_seq_len tokens), and of a whole
//! exhaustive verification. `cargo bench --bench forward`.
//! - `forward/*`: bundled programs at their own settings;
//! - `forward_long/*`: sort (vocab 1..10) and hist (vocab a b c) at
//!   max_seq_len 64, 128 and 256, sequences of full length (the cost model
//!   is in docs/ARCHITECTURE.md, "Verification").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tracr_opt::library::PROGRAMS;
use tracr_opt::rasp::inputs;
use tracr_opt::verify::{inputs_for, verify, Plan};
use tracr_opt::{compile, CompileOptions, Objective, Program};

const PROGRAMS_MEASURED: &[&str] = &["reverse", "sort", "shuffle_dyck3", "sort_freq", "nary_sequencemap"];

fn forward(c: &mut Criterion) {
    let ilp =
        CompileOptions { minimise: Some(vec![Objective::Layers, Objective::Params]), ..CompileOptions::default() };
    let mut group = c.benchmark_group("forward");
    for b in PROGRAMS.iter().filter(|b| PROGRAMS_MEASURED.contains(&b.name)) {
        let p = Program::load(b.name).unwrap();
        let s = p.settings.clone().unwrap();
        let compiled = compile(&p, &s, &ilp).unwrap();
        let runner = compiled.model.runner().unwrap();
        let batch: Vec<Vec<usize>> = inputs::sample(&s.vocab, s.max_seq_len, 256, 7)
            .into_iter()
            .filter(|x| x.len() == s.max_seq_len)
            .map(|x| runner.encode(&x).unwrap())
            .collect();
        group.throughput(Throughput::Elements(batch.len() as u64));
        group.bench_function(b.name, |bench| {
            bench.iter(|| {
                for ids in &batch {
                    black_box(runner.run(black_box(ids)));
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("forward_long");
    group.sample_size(10);
    for (name, vocab) in [("sort", "1 2 3 4 5 6 7 8 9 10"), ("hist", "a b c")] {
        let p = Program::load(name).unwrap();
        for m in [64, 128, 256] {
            let vocab = tracr_opt::value::parse_tokens(vocab);
            let s = tracr_opt::rasp::Settings { vocab, max_seq_len: m, causal: false };
            let compiled = compile(&p, &s, &CompileOptions::default()).unwrap();
            let runner = compiled.model.runner().unwrap();
            let batch: Vec<Vec<usize>> = (0..32u64)
                .map(|seed| inputs::sample(&s.vocab, m, 64, seed).into_iter().max_by_key(Vec::len).unwrap())
                .map(|x| (0..m).map(|i| x[i % x.len()].clone()).collect::<Vec<_>>())
                .map(|x| runner.encode(&x).unwrap())
                .collect();
            group.throughput(Throughput::Elements(batch.len() as u64));
            group.bench_function(format!("{name}/{m}"), |bench| {
                bench.iter(|| {
                    for ids in &batch {
                        black_box(runner.run(black_box(ids)));
                    }
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("verify_exhaustive");
    group.sample_size(10);
    for name in ["sort", "shuffle_dyck3"] {
        let p = Program::load(name).unwrap();
        let s = p.settings.clone().unwrap();
        let compiled = compile(&p, &s, &ilp).unwrap();
        let (inputs, exhaustive) = inputs_for(&s.vocab, s.max_seq_len, &Plan { samples: 1, seed: 0, threads: 0 });
        group.throughput(Throughput::Elements(inputs.len() as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| assert!(verify(&compiled.model, &compiled.tabulated, &inputs, exhaustive).ok()))
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
