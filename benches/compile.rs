//! Compile time per bundled program (verification off), release mode.
//! `cargo bench --bench compile`. The target is < 50 ms each (Tracr: 30–250 ms
//! warm, 4–5 s cold).

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::compile;
use tracr_opt::library::{self, PROGRAMS};
use tracr_opt::rasp::load::load_source;

fn compile_bundled(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    for b in PROGRAMS {
        let p = load_source(library::source_file(b), None).unwrap();
        let s = p.settings.clone().unwrap();
        group.bench_function(b.name, |bench| bench.iter(|| compile(black_box(&p), black_box(&s), &Heuristic).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, compile_bundled);
criterion_main!(benches);
