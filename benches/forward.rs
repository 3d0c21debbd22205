//! Forward-pass throughput of the Rust runner used by verification
//! (sequences per second, each of max_seq_len tokens), and of a whole
//! exhaustive verification. `cargo bench --bench forward`.

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
