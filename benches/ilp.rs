//! ILP allocation time against program size (random programs of 10–500 s-ops),
//! and the ILP on every bundled program. `cargo bench --bench ilp`.
//! Each run prints the model's layers and whether the solve was proven optimal.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracr_opt::library::{random::random_program_text, PROGRAMS};
use tracr_opt::{compile, CompileOptions, Objective, Program};

/// The ILP minimising layers, then params (every optimisation on).
fn ilp(time_limit: f64) -> CompileOptions {
    CompileOptions {
        minimise: Some(vec![Objective::Layers, Objective::Params]),
        time_limit_secs: time_limit,
        ..CompileOptions::default()
    }
}

/// Programs larger than this hit microlp's limits; they are solved once with a
/// short time limit and reported (optimal or not, with the gap), not sampled.
const SAMPLED_UP_TO: usize = 50;
const LARGE_TIME_LIMIT: f64 = 2.0;

fn random_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_random");
    group.sample_size(10);
    for n in [10, 50, 100, 200, 500] {
        let text = random_program_text(n, 1);
        let p = Program::from_rasp(&format!("random{n}.rasp"), &text).unwrap();
        let s = p.settings.clone().unwrap();
        let limit = if n <= SAMPLED_UP_TO { 30.0 } else { LARGE_TIME_LIMIT };
        let once = compile(&p, &s, &ilp(limit)).unwrap();
        let info = once.allocation.info.clone().unwrap();
        eprintln!(
            "random {n:3} s-ops: {} blocks, {} layers, optimal {}, gap {:.3}, {:.1} ms (time limit {limit} s)",
            once.model.meta.layers.iter().map(|l| l.heads.len() + l.mlps.len()).sum::<usize>(),
            once.model.config.n_layers,
            info.optimal,
            info.gap,
            info.solve_ms
        );
        if n <= SAMPLED_UP_TO {
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| compile(&p, &s, &ilp(limit)).unwrap())
            });
        }
    }
    group.finish();
}

fn bundled(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_bundled");
    for b in PROGRAMS {
        let p = Program::load(b.name).unwrap();
        let s = p.settings.clone().unwrap();
        group.bench_function(b.name, |bench| bench.iter(|| compile(&p, &s, &ilp(30.0)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, random_sizes, bundled);
criterion_main!(benches);
