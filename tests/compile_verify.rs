//! Every bundled program compiles and its model agrees with the interpreter on
//! every input at the default settings, causal and non-causal, both as Tracr
//! would lay it out and with every optimisation on.

mod common;

use common::bundled;
use tracr_opt::library::PROGRAMS;
use tracr_opt::{compile, AllocatorKind, CompileOptions, VerifyOptions};

#[test]
fn every_bundled_program_verifies_exhaustively() {
    let mut failures = Vec::new();
    for b in PROGRAMS {
        let p = bundled(b.name);
        for (causal, optimised) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut s = p.settings.clone().unwrap();
            s.causal = causal;
            // Tracr's allocation both ways, so that only the passes differ
            let options = if optimised {
                CompileOptions { allocator: AllocatorKind::Heuristic, ..CompileOptions::default() }
            } else {
                CompileOptions::baseline()
            };
            let c = compile(&p, &s, &options)
                .unwrap_or_else(|e| panic!("{} (causal={causal}, optimised={optimised}): {e}", b.name));
            let r = c.verify(&VerifyOptions::default()).unwrap();
            assert!(r.exhaustive, "{}: default settings are small enough to check every input", b.name);
            eprintln!(
                "{:18} causal={causal:5} optimised={optimised:5} inputs={:6} mismatches={} max_err={:.1e} min_margin={:.3}",
                b.name, r.inputs, r.mismatches, r.max_abs_error, r.min_margin
            );
            if !r.ok() {
                failures.push(format!(
                    "{} (causal={causal}, optimised={optimised}): {} of {} inputs, e.g. {:?}",
                    b.name,
                    r.mismatches,
                    r.inputs,
                    r.examples.first()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
