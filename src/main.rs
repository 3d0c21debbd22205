use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use tracr_opt::cli::{run, Cli};

fn main() -> ExitCode {
    // A panic is a bug in tracr-opt: say so and exit 2, as for other internal errors.
    std::panic::set_hook(Box::new(|info| {
        // `println!` and `eprintln!` panic when their pipe is closed early
        // (`tracr-opt ... | head`, `2>&1 | head`); that is the reader's
        // choice, not a bug: stop quietly as a Unix tool does.
        let message = info.payload_as_str().unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        // not eprintln!: a panic inside this hook would abort
        let _ = writeln!(
            std::io::stderr(),
            "internal error: {info}\n(this is a bug in tracr-opt; please report it with the command that caused it)"
        );
    }));
    // clap exits 2 on a usage error; here 2 means a bug, so usage errors exit 1
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
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
