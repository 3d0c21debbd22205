//! The fuzzing smoke pass that `cargo test` (hence `.ci/run`) runs: every
//! committed corpus input of every fuzz target (fuzz/corpus/TARGET), then
//! seeded random mutations of them for a bounded time. It fails on a panic
//! or on an input that runs longer than [`HANG_SECS`], and saves the input
//! under target/fuzz-smoke/ with the command that replays it.
//!
//! The targets are those of the coverage-guided campaign (fuzz/src/lib.rs,
//! included here as a module), run without instrumentation: a second,
//! instrumented build of the crate would add about 8 minutes to a cold CI run
//! (docs/RESULTS.md, "Fuzzing"). The corpus carries what the campaigns found.
//!
//! `TRACR_OPT_FUZZ_SECS` sets the mutation time (default 80 s, shared by the
//! targets); `TRACR_OPT_FUZZ_REPLAY=FILE` with `TRACR_OPT_FUZZ_TARGET=NAME`
//! runs one saved input alone.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tracr_opt::rasp::inputs::SplitMix64;

/// An input slower than this is a hang (a target clamps every setting, so a
/// healthy input takes milliseconds).
const HANG_SECS: u64 = 30;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("rasp", targets::rasp),
    ("json", targets::json),
    ("model_dir", targets::model_dir),
    ("compile", targets::compile),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of fuzz/corpus/TARGET, in name order.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))).collect()
}

/// Tokens of the target's libFuzzer dictionary (fuzz/dict), unescaped.
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let Ok(text) = std::fs::read_to_string(root().join("fuzz/dict").join(format!("{target}.dict"))) else {
        return Vec::new();
    };
    text.lines().filter_map(|line| line.strip_prefix('"')?.strip_suffix('"').map(unescape)).collect()
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// One random edit of `input`, in the spirit of libFuzzer's mutators: flip,
/// insert or erase bytes, insert a dictionary token or an interesting
/// number, copy a range, or splice in part of another corpus entry.
fn mutate(input: &[u8], corpus: &[Vec<u8>], dict: &[Vec<u8>], rng: &mut SplitMix64) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.below(256) as u8),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 | 4 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                out.splice(at..at, token.iter().copied());
            }
            5 => {
                const NUMBERS: [&str; 8] =
                    ["0", "-1", "65535", "2147483648", "1e10", "nan", "9223372036854775807", "0.1"];
                let n = NUMBERS[rng.below(NUMBERS.len())];
                let end = (at + rng.below(4)).min(out.len());
                out.splice(at..end, n.bytes());
            }
            6 if !out.is_empty() => {
                let from = rng.below(out.len());
                let end = (from + 1 + rng.below(64)).min(out.len());
                let piece = out[from..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(256)).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
    }
    out
}

/// Saves a failing input and returns how to replay it.
fn save(target: &str, kind: &str, input: &[u8]) -> String {
    let dir = root().join("target/fuzz-smoke");
    std::fs::create_dir_all(&dir).expect("target/fuzz-smoke");
    let path = dir.join(format!("{kind}-{target}-{}", std::process::id()));
    std::fs::write(&path, input).expect("saving the failing input");
    format!(
        "saved as {}; replay with TRACR_OPT_FUZZ_TARGET={target} TRACR_OPT_FUZZ_REPLAY={} cargo test --release --test fuzz_smoke replay -- --ignored, or fuzz/run {target} {}",
        path.display(),
        path.display(),
        path.display()
    )
}

/// Runs the inputs `next` yields through `target` on a worker thread, and
/// fails on the first panic or on one input running over `hang` seconds.
/// Returns how many inputs ran.
fn drive(
    name: &'static str,
    target: Target,
    hang: u64,
    mut next: impl FnMut() -> Option<Vec<u8>> + Send + 'static,
) -> usize {
    let (started, watch) = mpsc::channel::<Option<Vec<u8>>>();
    let worker = std::thread::spawn(move || {
        let mut runs = 0;
        while let Some(input) = next() {
            started.send(Some(input.clone())).expect("the watchdog listens");
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("{name} panicked: {message}\n{}", save(name, "crash", &input)));
            }
            runs += 1;
        }
        let _ = started.send(None);
        Ok(runs)
    });
    let mut current: Option<(Vec<u8>, Instant)> = None;
    loop {
        match watch.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(input)) => current = Some((input, Instant::now())),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some((input, since)) = &current {
            if since.elapsed() > Duration::from_secs(hang) {
                panic!("{name}: one input ran over {hang} s (a hang)\n{}", save(name, "hang", input));
            }
        }
    }
    match worker.join().expect("the worker catches panics") {
        Ok(runs) => runs,
        Err(message) => panic!("{message}"),
    }
}

#[test]
fn the_committed_corpus_runs_clean() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(inputs.len() >= 6, "fuzz/corpus/{name} holds only {} inputs", inputs.len());
        let count = inputs.len();
        let mut queue = inputs.into_iter();
        let runs = drive(name, target, HANG_SECS, move || queue.next());
        assert_eq!(runs, count);
        total += runs;
    }
    eprintln!("replayed {total} corpus inputs");
}

#[test]
fn seeded_mutations_run_clean() {
    let secs: u64 = std::env::var("TRACR_OPT_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(80);
    let share = Duration::from_secs(secs) / TARGETS.len() as u32;
    for (i, (name, target)) in TARGETS.into_iter().enumerate() {
        let corpus = corpus(name);
        let dict = dictionary(name);
        let mut rng = SplitMix64::new(0x5eed + i as u64);
        let deadline = Instant::now() + share;
        let runs = drive(name, target, HANG_SECS, move || {
            (Instant::now() < deadline).then(|| {
                let base = &corpus[rng.below(corpus.len())];
                mutate(base, &corpus, &dict, &mut rng)
            })
        });
        eprintln!("{name}: {runs} mutated inputs in {share:?}");
        assert!(runs > 0, "{name} ran no mutated input");
    }
}

/// Runs one saved input (see the module comment).
#[test]
#[ignore = "a tool: set TRACR_OPT_FUZZ_TARGET and TRACR_OPT_FUZZ_REPLAY, run with --ignored"]
fn replay() {
    let file = std::env::var("TRACR_OPT_FUZZ_REPLAY").expect("TRACR_OPT_FUZZ_REPLAY names the input");
    let name = std::env::var("TRACR_OPT_FUZZ_TARGET").expect("TRACR_OPT_FUZZ_TARGET names the target");
    let (_, target) = TARGETS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no fuzz target {name}"));
    target(&std::fs::read(Path::new(&file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}")));
}

// The pass itself: a panic and a hang must each fail it.

fn one_input() -> impl FnMut() -> Option<Vec<u8>> + Send + 'static {
    let mut once = Some(b"input".to_vec());
    move || once.take()
}

#[test]
#[should_panic(expected = "selftest panicked: boom")]
fn a_panicking_target_fails_the_pass() {
    drive("selftest", |_| panic!("boom"), HANG_SECS, one_input());
}

#[test]
#[should_panic(expected = "selftest: one input ran over 1 s (a hang)")]
fn a_hanging_target_fails_the_pass() {
    drive("selftest", |_| std::thread::sleep(Duration::from_secs(3)), 1, one_input());
}
