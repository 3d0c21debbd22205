//! docs/ERRORS.md stays true: every row of its matrix runs (bash, in a
//! scratch copy of tests/bad_inputs, with `tracr-opt` on the PATH, under
//! `ulimit -v 6000000` and a 60 s timeout) and gives the exit code and the
//! message excerpt the row says.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Row {
    input: String,
    command: String,
    exit: i32,
    message: String,
}

/// The cells of a Markdown table row, `\|` kept as `|` inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ERRORS.md")).unwrap();
    let table = text
        .split("<!-- errors:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- errors:end -->").next())
        .expect("docs/ERRORS.md has the errors:begin/end markers");
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and rule
        .map(|line| {
            let c = cells(line);
            assert_eq!(c.len(), 4, "a row of four cells: {line}");
            let command = c[1].strip_prefix('`').and_then(|s| s.strip_suffix('`')).unwrap_or_else(|| {
                panic!("the command is in backticks: {line}");
            });
            Row {
                input: c[0].clone(),
                command: command.to_string(),
                exit: c[2].parse().unwrap_or_else(|_| panic!("an exit code: {line}")),
                message: c[3].clone(),
            }
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn every_row_of_the_bad_input_matrix_holds() {
    let rows = rows();
    assert!(rows.len() >= 30, "the matrix has {} rows", rows.len());
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tracr-opt"));
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let base = std::env::temp_dir().join(format!("tracr-opt-errors-{}", std::process::id()));
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let dir = base.join(i.to_string());
        copy_dir(&fixtures, &dir);
        let script = dir.join(".row.sh");
        std::fs::write(&script, &row.command).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg("ulimit -v 6000000 && exec timeout 60 bash .row.sh")
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(-1);
        if code != row.exit || !printed.contains(&row.message) {
            failures.push(format!(
                "{} — `{}`: exit {code} (the matrix says {}), printed:\n{}",
                row.input,
                row.command,
                row.exit,
                printed.chars().take(1500).collect::<String>()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(failures.is_empty(), "docs/ERRORS.md does not hold:\n\n{}", failures.join("\n\n"));
}
