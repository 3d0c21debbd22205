//! Every bundled program compiles and its model agrees with the interpreter on
//! every input at the default settings, causal and non-causal, both as Tracr
//! would lay it out and with every optimisation on.

mod common;

use common::bundled;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::{compile, Options};
use tracr_opt::library::PROGRAMS;
use tracr_opt::verify::{inputs_for, verify, Plan};

#[test]
fn every_bundled_program_verifies_exhaustively() {
    let mut failures = Vec::new();
    for b in PROGRAMS {
        let p = bundled(b.name);
        for (causal, optimised) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut s = p.settings.clone().unwrap();
            s.causal = causal;
            let options = if optimised { Options::default() } else { Options::none() };
            let c = compile(&p, &s, &Heuristic, &options)
                .unwrap_or_else(|e| panic!("{} (causal={causal}, optimised={optimised}): {e}", b.name));
            let (inputs, exhaustive) = inputs_for(&s.vocab, s.max_seq_len, &Plan { samples: 0, seed: 0 });
            assert!(exhaustive, "{}: default settings are small enough to check every input", b.name);
            let r = verify(&c.model, &c.tabulated, &inputs, exhaustive);
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
