//! ILP allocation against program size, and the ILP on every bundled
//! program. `cargo bench --bench ilp`.
//!
//! Random programs (`library::random`) of 10 and 50 s-ops are timed by
//! criterion. Those of 100, 200 and 500 s-ops (seeds 1–3) are solved once
//! each with the default objectives `layers,width,params` and a 60 s limit;
//! a table row per program gives the layers, width and parameters found,
//! who placed the erasures, the gap of each stage to its proven lower
//! bound, and the time
//! (solver-models/layer_allocation.md, "Large programs").

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracr_opt::library::{random::random_program_text, PROGRAMS};
use tracr_opt::{compile, CompileOptions, Program};

/// The default objectives, with a time limit.
fn ilp(time_limit: f64) -> CompileOptions {
    CompileOptions { time_limit_secs: time_limit, ..CompileOptions::default() }
}

const SAMPLED: [usize; 2] = [10, 50];
const LARGE: [usize; 3] = [100, 200, 500];
const SEEDS: [u64; 3] = [1, 2, 3];
const LARGE_TIME_LIMIT: f64 = 60.0;

fn random_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_random");
    group.sample_size(10);
    for n in SAMPLED {
        let p = Program::from_rasp(&format!("random{n}.rasp"), &random_program_text(n, 1)).unwrap();
        let s = p.settings.clone().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| compile(&p, &s, &ilp(30.0)).unwrap())
        });
    }
    group.finish();
    eprintln!(
        "\n| s-ops | seed | blocks | layers | d_model | heads | d_mlp | params | erasures | proven | gap width | gap params | time |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in LARGE {
        for seed in SEEDS {
            let p = Program::from_rasp(&format!("random{n}_{seed}.rasp"), &random_program_text(n, seed)).unwrap();
            let s = p.settings.clone().unwrap();
            let once = compile(&p, &s, &ilp(LARGE_TIME_LIMIT)).unwrap();
            let info = once.allocation.info.clone().unwrap();
            let gap = |o: &str| {
                info.gaps
                    .iter()
                    .find(|(name, _)| name == o)
                    .map_or("–".to_string(), |(_, g)| format!("{:.1}%", g * 100.0))
            };
            let cfg = &once.model.config;
            eprintln!(
                "| {n} | {seed} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
                once.model.meta.layers.iter().map(|l| l.heads.len() + l.mlps.len()).sum::<usize>(),
                cfg.n_layers,
                cfg.d_model,
                cfg.n_heads,
                cfg.d_mlp,
                once.model.params(),
                // who placed the erasures: the ILP's schedule (priced) or the layout
                if once.allocation.erase.is_some() { "ILP" } else { "layout" },
                if info.optimal { "yes" } else { "no" },
                gap("width"),
                gap("params"),
                info.solve_ms / 1e3
            );
        }
    }
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
