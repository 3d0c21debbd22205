//! `tracr-opt list`: the bundled programs.

use crate::diagnostic::Result;
use crate::library::{self, PROGRAMS};
use crate::value::Value;
use clap::Args;

#[derive(Args)]
pub struct ListArgs {
    /// Print the source of one bundled program instead.
    #[arg(long, value_name = "NAME")]
    pub show: Option<String>,
}

pub fn run(args: ListArgs) -> Result<()> {
    if let Some(name) = args.show {
        let b = library::find(&name)
            .ok_or_else(|| crate::Error::usage(format!("no bundled program named '{name}' (see `tracr-opt list`)")))?;
        print!("{}", b.source);
        return Ok(());
    }
    let width = PROGRAMS.iter().map(|b| b.name.len()).max().unwrap_or(0);
    for b in PROGRAMS {
        let p = crate::Program::load(b.name)?;
        let s = p.settings.as_ref().expect("bundled programs declare settings");
        let vocab: Vec<String> = s.vocab.iter().map(Value::display).collect();
        println!("{:width$}  {}  [vocab {{{}}}, max_seq_len {}]", b.name, b.summary, vocab.join(","), s.max_seq_len);
    }
    Ok(())
}
