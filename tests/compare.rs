//! `tracr-opt compare`: every bundled program, both models verified, and the
//! table in docs/RESULTS.md is the one it prints (compile times aside).

use std::process::Command;

fn tracr_opt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Table rows with the compile-time column (timing varies run to run) blanked.
fn rows_without_times(table: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
    let header: Vec<&str> = lines[0].split('|').map(str::trim).collect();
    let time_col = header.iter().position(|h| *h == "compile ms").expect("a compile ms column");
    lines
        .iter()
        .map(|l| {
            l.split('|')
                .enumerate()
                .map(|(i, c)| if i == time_col { String::new() } else { c.trim().to_string() })
                .collect()
        })
        .collect()
}

#[test]
fn results_md_matches_what_compare_prints() {
    let (code, printed, err) = tracr_opt(&["compare"]);
    assert_eq!(code, 0, "{err}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/RESULTS.md")).unwrap();
    let begin = doc.find("<!-- compare:begin -->").expect("RESULTS.md has the compare section");
    let end = doc.find("<!-- compare:end -->").unwrap();
    let section = &doc[begin..end];
    assert_eq!(
        rows_without_times(section),
        rows_without_times(&printed),
        "docs/RESULTS.md is stale: run `cargo run --release -- compare --update docs/RESULTS.md`"
    );
    // one verified row per bundled program, plus header, rule and total
    let rows = rows_without_times(&printed);
    assert_eq!(rows.len(), tracr_opt::library::PROGRAMS.len() + 3);
    let verified = rows[0].iter().position(|h| h == "verified").expect("a verified column");
    for b in tracr_opt::library::PROGRAMS {
        let row = rows.iter().find(|r| r[1] == b.name).unwrap_or_else(|| panic!("no row for {}", b.name));
        let cell = &row[verified];
        assert!(cell.starts_with("✓") && cell.ends_with("(all)"), "{}: {cell}", b.name);
    }
}

#[test]
fn compare_formats_agree() {
    let (code, json, err) = tracr_opt(&["compare", "reverse", "shuffle_dyck", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dyck_json = &j[1];
    let dyck = dyck_json;
    assert_eq!(dyck["program"], "shuffle_dyck");
    // Tracr's own figures for make_shuffle_dyck(['()']) at these settings
    assert_eq!(dyck["tracr"]["layers"], 6);
    assert_eq!(dyck["tracr"]["params"], 64688);
    assert_eq!(dyck["baseline"]["layers"], 6);
    // graph rewrites take it to 4; the ILP alone to 5
    assert_eq!(dyck["optimised"]["layers"], 4);
    assert_eq!(dyck["no_rewrites"]["layers"], 5);
    assert!(dyck["optimised"]["params"].as_u64() < dyck["baseline"]["params"].as_u64());
    assert_eq!(dyck["verified"]["optimised_mismatches"], 0);
    let (code, csv, _) = tracr_opt(&["compare", "reverse", "shuffle_dyck", "--format", "csv", "--no-verify"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    let head: Vec<&str> = lines[0].split(',').collect();
    let dyck_csv: Vec<&str> = lines[2].split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    assert_eq!(dyck_csv[col("optimised_params")], dyck_json["optimised"]["params"].to_string());
    assert_eq!(dyck_csv[col("optimised_structural_params")], dyck_json["optimised"]["structural_params"].to_string());
    assert_eq!(dyck_csv[col("tracr_structural_params")], "", "Tracr's figures have no block sizes");
    assert_eq!(dyck_csv[col("tracr_layers")], "6");
    assert_eq!(dyck_csv[col("inputs")], "");
    // settings Tracr did not measure: no Tracr column
    let (_, j, _) = tracr_opt(&["compare", "reverse", "--format", "json", "--causal", "--no-verify"]);
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(!j[0]["tracr"].is_null(), "Tracr measured reverse causal too");
}

#[test]
fn update_needs_the_markers() {
    let dir = std::env::temp_dir().join(format!("tracr-opt-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("doc.md");
    std::fs::write(&f, "# no markers here\n").unwrap();
    let (code, _, err) = tracr_opt(&["compare", "length", "--no-verify", "--update", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("has no '<!-- compare:begin -->'"), "{err}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "# no markers here\n");
    std::fs::write(&f, "before\n<!-- compare:begin -->\nSTALE\n<!-- compare:end -->\nafter\n").unwrap();
    let (code, _, err) = tracr_opt(&["compare", "length", "--no-verify", "--update", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with("before\n<!-- compare:begin -->\nEach cell"), "{text}");
    assert!(text.contains("| length | 1 / 1 / 1 |") && text.ends_with("<!-- compare:end -->\nafter\n"), "{text}");
    assert!(!text.contains("STALE"));
}

/// Structural params sit between the nonzero and the dense count: every
/// nonzero weight lies in a block as it is, and padding only adds. With no
/// block to pad (a model of embeddings alone) there is no padding.
#[test]
fn structural_params_lie_between_nonzero_and_dense() {
    use tracr_opt::{compile, CompileOptions, Program};
    for name in tracr_opt::library::PROGRAMS.iter().map(|b| b.name) {
        let p = Program::load(name).unwrap();
        let s = p.settings_with(None, None, None).unwrap();
        for options in [CompileOptions::default(), CompileOptions::baseline()] {
            let m = compile(&p, &s, &options).unwrap().model;
            let (nz, st, dense) = (m.nonzero_params(), m.structural_params(), m.params());
            assert!(nz <= st && st <= dense, "{name}: nonzero {nz}, structural {st}, dense {dense}");
        }
    }
    let p = Program::from_rasp("id.rasp", "out = tokens\ncompile(out, vocab={\"a\", \"b\"}, max_seq_len=3)\n").unwrap();
    let m = compile(&p, &p.settings_with(None, None, None).unwrap(), &CompileOptions::default()).unwrap().model;
    assert_eq!(m.config.n_layers, 0);
    assert_eq!(m.structural_params(), m.params());
}
