//! Compile time per bundled program (verification off), release mode.
//! `cargo bench --bench compile`.
//! - `compile/*`: the default pipeline (ILP allocation minimising layers,
//!   residual width, then params; every optimisation on), as `tracr-opt
//!   compile` runs it. Target
//!   < 50 ms each (Tracr: 30–250 ms warm, 4–5 s cold).
//! - `baseline/*`: Tracr's heuristic allocation, no optimisation.
//! - `factorise/*`: the factorisation pass alone on the blocks lowered from
//!   the program as written (target < 5 ms each).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::alloc::ilp::{Ilp, Objective};
use tracr_opt::compiler::{compile, factorise, lower, Options};
use tracr_opt::lang::load::load_source;
use tracr_opt::library::{self, PROGRAMS};
use tracr_opt::rasp::valueset::{infer, tabulate};

fn compile_bundled(c: &mut Criterion) {
    let ilp = Ilp {
        objectives: vec![Objective::Layers, Objective::Width, Objective::Params],
        time_limit: 5.0,
        emit_lp: None,
    };
    let mut group = c.benchmark_group("compile");
    for b in PROGRAMS {
        let p = load_source(library::source_file(b), None).unwrap();
        let s = p.settings.clone().unwrap();
        group.bench_function(b.name, |bench| {
            bench.iter(|| compile(black_box(&p), black_box(&s), &ilp, &Options::default()).unwrap())
        });
    }
    group.finish();
    let mut group = c.benchmark_group("baseline");
    for b in PROGRAMS {
        let p = load_source(library::source_file(b), None).unwrap();
        let s = p.settings.clone().unwrap();
        group.bench_function(b.name, |bench| {
            bench.iter(|| compile(black_box(&p), black_box(&s), &Heuristic, &Options::none()).unwrap())
        });
    }
    group.finish();
}

fn factorise_bundled(c: &mut Criterion) {
    let mut group = c.benchmark_group("factorise");
    for b in PROGRAMS {
        let p = load_source(library::source_file(b), None).unwrap();
        let s = p.settings.clone().unwrap();
        let vs = infer(&p, &s.vocab, s.max_seq_len).unwrap();
        let t = tabulate(&p, &vs).unwrap();
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

criterion_group!(benches, compile_bundled, factorise_bundled);
criterion_main!(benches);
