use clap::Parser;
use std::process::ExitCode;
use tracr_opt::cli::{run, Cli};

fn main() -> ExitCode {
    // A panic is a bug in tracr-opt: say so and exit 2, as for other internal errors.
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "internal error: {info}\n(this is a bug in tracr-opt; please report it with the command that caused it)"
        );
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{e}");
            if e.is_internal() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
        Err(_) => ExitCode::from(2),
    }
}
