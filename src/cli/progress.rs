//! Progress on stderr for the long runs: drawn only when stderr is a
//! terminal (indicatif hides it otherwise) and only once a run has taken
//! more than a second, so quick commands print nothing extra.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a run goes before its progress is shown.
const DELAY: Duration = Duration::from_secs(1);

/// A bar over a known count that appears after [`DELAY`].
pub struct Counter {
    bar: ProgressBar,
    started: Instant,
    shown: AtomicBool,
}

impl Counter {
    /// A hidden bar of `len` steps, labelled `what`.
    pub fn new(what: &str) -> Counter {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} (eta {eta})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Counter { bar, started: Instant::now(), shown: AtomicBool::new(false) }
    }

    /// `done` of `total`; draws from the first call after [`DELAY`].
    pub fn set(&self, done: usize, total: usize) {
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() > DELAY
            && !self.shown.swap(true, Ordering::SeqCst)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A spinner with the elapsed time, shown from [`DELAY`] after it is made
/// until it is dropped: for a step with no count (the ILP solve).
pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    /// Starts the wait; `what` says what is running.
    pub fn after_delay(what: String) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < DELAY {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(100));
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            bar.finish_and_clear();
        });
        Spinner { stop, thread: Some(thread) }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `crate::compile` with a spinner after a second (the layer-allocation ILP
/// is what takes time on large programs; its limit is `--time-limit`).
pub fn compile_with_spinner(
    p: &crate::Program,
    settings: &crate::Settings,
    options: &crate::CompileOptions,
) -> crate::Result<crate::Compiled> {
    let what = match options.allocator {
        crate::AllocatorKind::Ilp => {
            format!("compiling {} (layer allocation ILP, at most {} s)", p.name, options.time_limit_secs)
        }
        crate::AllocatorKind::Heuristic => format!("compiling {}", p.name),
    };
    let _spinner = Spinner::after_delay(what);
    crate::compile(p, settings, options)
}

/// Verification with a bar after a second.
pub fn verify_with_bar(compiled: &crate::Compiled, options: &crate::VerifyOptions) -> crate::Result<crate::Report> {
    let bar = Counter::new("verifying against the interpreter");
    compiled.verify_with(options, &|done, total| bar.set(done, total))
}
