//! The command line as a user meets it: exit codes, messages, files.

use std::path::PathBuf;
use std::process::Command;

fn tracr_opt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn eval_prints_the_output_and_the_trace() {
    let (code, out, _) = tracr_opt(&["eval", "reverse", "--input", "a b c"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "['c', 'b', 'a']");
    let (_, out, _) = tracr_opt(&["eval", "reverse", "--input", "a b", "--trace"]);
    assert!(out.contains("opp_idx_minus_1  [1, 0]"), "{out}");
    let (_, out, _) = tracr_opt(&["eval", "length", "--input", "a b c", "--causal", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["output"], serde_json::json!([1, 2, 3]));
}

#[test]
fn user_errors_exit_1_with_a_message() {
    let (code, _, err) = tracr_opt(&["eval", "reverse", "--input", "a z"]);
    assert_eq!(code, 1);
    assert!(err.contains("input token 'z' is not in the vocab {a, b, c}"), "{err}");
    let (code, _, err) = tracr_opt(&["compile", "no_such_program"]);
    assert_eq!(code, 1);
    assert!(err.contains("neither a file nor a bundled program"), "{err}");
    let dir = scratch("bad");
    let f = dir.join("bad.rasp");
    std::fs::write(&f, "x = Map(lambda a: a, tokenz)\n").unwrap();
    let (code, _, err) = tracr_opt(&["eval", f.to_str().unwrap(), "--input", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.rasp:1:22: error: unknown name 'tokenz'"), "{err}");
}

#[test]
fn compiled_model_runs_from_its_files_alone() {
    let dir = scratch("run");
    let out = dir.join("model");
    let (code, text, err) = tracr_opt(&["compile", "sort_unique", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("0 mismatches"), "{text}");
    for f in ["model.safetensors", "config.json", "tracr_opt.json", "circuit.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let (code, text, _) = tracr_opt(&["run", out.to_str().unwrap(), "--input", "4 2 5 1"]);
    assert_eq!(code, 0);
    assert_eq!(text.trim(), "[1, 2, 4, 5]");
    // compiling again replaces it in place
    let (code, _, _) = tracr_opt(&["compile", "sort_unique", "--causal", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["attention_dir"], "causal");
}

#[test]
fn an_unrelated_directory_is_never_replaced() {
    let dir = scratch("unrelated");
    let keep = dir.join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let (code, _, err) = tracr_opt(&["compile", "length", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a tracr-opt model directory"), "{err}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
}

#[test]
fn a_failed_compile_writes_nothing() {
    let dir = scratch("fail");
    let prog = dir.join("mix.rasp");
    // categorical Aggregate that mixes values: refused at compile time
    std::fs::write(
        &prog,
        "out = Aggregate(Select(indices, indices, LEQ), tokens)\ncompile(out, vocab={'a', 'b'}, max_seq_len=3)\n",
    )
    .unwrap();
    let out = dir.join("model");
    let (code, _, err) = tracr_opt(&["compile", prog.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot compile 'out'"), "{err}");
    assert!(!out.exists());
    // one the compiler cannot prove wrong: verification catches it
    std::fs::write(
        &prog,
        "is_a = tokens == 'a'\nout = Aggregate(Select(is_a, is_a, EQ), tokens)\ncompile(out, vocab={'a', 'b', 'c'}, max_seq_len=3)\n",
    )
    .unwrap();
    let (code, _, err) = tracr_opt(&["compile", prog.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("disagrees with the interpreter") && err.contains("nothing was written"), "{err}");
    assert!(err.contains("selected positions holding different values"), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the program remains: {leftovers:?}");
}

#[test]
fn minimise_layers_reports_an_optimal_allocation() {
    let (code, out, err) = tracr_opt(&["compile", "shuffle_dyck3", "--minimise", "layers", "--json", "--no-rewrites"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["layers"], 8);
    assert_eq!(j["allocator"], "ilp");
    assert_eq!(j["optimal"], true);
    assert_eq!(j["gap"], 0.0);
    assert!(j["solve_ms"].is_number());
    let (code, out, _) =
        tracr_opt(&["compile", "shuffle_dyck3", "--allocator", "heuristic", "--json", "--no-rewrites"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["layers"], 9);
    let (code, _, err) = tracr_opt(&["compile", "sort", "--minimise", "layers,depth"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown objective 'depth'"), "{err}");
    let (code, _, err) = tracr_opt(&["compile", "sort", "--allocator", "heuristic", "--minimise", "heads"]);
    assert_eq!(code, 1);
    assert!(err.contains("need the ILP allocator"), "{err}");
}

#[test]
fn compile_json_has_the_documented_keys() {
    let (code, out, _) = tracr_opt(&["compile", "frac_prevs", "--json"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["layers", "d_model", "n_heads", "d_head", "d_mlp", "params", "nonzero_params", "compile_ms"] {
        assert!(j[k].is_number(), "{k} in {j}");
    }
    assert_eq!(j["verified"]["mismatches"], 0);
    assert_eq!(j["verified"]["inputs"], 4 + 16 + 64 + 256 + 1024);
}

#[test]
fn zero_samples_is_refused_not_a_silent_pass() {
    let (code, _, err) = tracr_opt(&["verify", "sort", "--max-seq-len", "20", "--samples", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--samples must be at least 1"), "{err}");
}

#[test]
fn verify_reports_and_exits_0() {
    let (code, out, _) = tracr_opt(&["verify", "shift_by", "--causal"]);
    assert_eq!(code, 0);
    assert!(out.contains("checked 363 inputs (every input of every length): 0 mismatches"), "{out}");
}

#[test]
fn convert_writes_json_that_evaluates_the_same() {
    let dir = scratch("convert");
    let f = dir.join("dyck.json");
    let (code, _, err) = tracr_opt(&["convert", "shuffle_dyck", "--to", "json", "-o", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, a, _) = tracr_opt(&["eval", "shuffle_dyck", "--input", "( ) ( ( )"]);
    let (_, b, _) = tracr_opt(&["eval", f.to_str().unwrap(), "--input", "( ) ( ( )"]);
    assert_eq!(a, b);
    let (code, _, _) = tracr_opt(&["verify", f.to_str().unwrap()]);
    assert_eq!(code, 0);
}

#[test]
fn every_subcommand_has_help() {
    for cmd in ["list", "eval", "convert", "compile", "verify", "run"] {
        let (code, out, _) = tracr_opt(&[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd}");
        assert!(out.contains("Usage: tracr-opt"), "{cmd}: {out}");
    }
}

#[test]
fn the_same_program_and_flags_give_byte_identical_models() {
    let dir = scratch("determinism");
    let mut bytes = Vec::new();
    for run in 0..2 {
        let out = dir.join(format!("m{run}"));
        let (code, _, err) = tracr_opt(&["compile", "shuffle_dyck2", "--out", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        bytes.push(
            ["model.safetensors", "config.json", "tracr_opt.json", "circuit.json"]
                .map(|f| std::fs::read(out.join(f)).unwrap()),
        );
    }
    for (f, (a, b)) in ["model.safetensors", "config.json", "tracr_opt.json", "circuit.json"]
        .iter()
        .zip(bytes[0].iter().zip(&bytes[1]))
    {
        assert!(
            a == b,
            "two compiles of the same program differ in {f}:\n{}\n---\n{}",
            String::from_utf8_lossy(a).chars().take(3000).collect::<String>(),
            String::from_utf8_lossy(b).chars().take(3000).collect::<String>()
        );
    }
}

#[test]
fn compile_json_reports_ranks_and_the_factorisation_switch() {
    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = tracr_opt(args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let on = json(&["compile", "count_less_freq", "--json"]);
    let off = json(&["compile", "count_less_freq", "--json", "--no-factorise"]);
    let flat = |j: &serde_json::Value, k: &str| -> Vec<u64> {
        j[k].as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()))
            .collect()
    };
    // the second head's selector has parallel key columns: 4 keys read, rank 2
    assert_eq!(flat(&off, "qk_ranks"), vec![4, 4]);
    assert_eq!(flat(&on, "qk_ranks"), vec![4, 2]);
    assert_eq!(flat(&on, "ov_ranks"), vec![1, 1]);
    assert_eq!(on["d_head"], 4);
    assert_eq!(on["verified"]["max_diff_from_unoptimised"], 0.0);
    // sharing alone also has an unoptimised model to compare with; neither has none
    assert_eq!(off["verified"]["max_diff_from_unoptimised"], 0.0);
    let bare = json(&["compile", "count_less_freq", "--json", "--no-factorise", "--no-share-residual"]);
    assert!(bare["verified"]["max_diff_from_unoptimised"].is_null());
    let dyck_on = json(&["compile", "shuffle_dyck", "--json", "--allocator", "heuristic", "--no-share-residual"]);
    let dyck_off = json(&[
        "compile",
        "shuffle_dyck",
        "--json",
        "--allocator",
        "heuristic",
        "--no-factorise",
        "--no-share-residual",
    ]);
    // Tracr's layout keeps a ramp per gap between balance's values (33 at
    // max_seq_len 5; tests/factorisation.rs counts them); factorised, only
    // the live ones
    let (off, on) = (dyck_off["d_mlp"].as_u64().unwrap(), dyck_on["d_mlp"].as_u64().unwrap());
    assert!(on < 20 && off > 5 * on, "d_mlp {off} unfactorised, {on} factorised");
}

#[test]
fn compile_json_reports_the_residual_width_and_its_lower_bound() {
    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = tracr_opt(args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let shared = json(&["compile", "reverse", "--json"]);
    let alone = json(&["compile", "reverse", "--json", "--no-share-residual"]);
    let num = |j: &serde_json::Value, k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"));
    // reverse's last head reads 15 directions while it writes 3 more (see
    // solver-models/residual_sharing.md); Tracr's layout has 31
    assert_eq!(num(&shared, "d_model_lower_bound"), 18);
    assert_eq!(shared["residual"]["d_model_live_peak"], 15);
    assert_eq!(num(&shared, "d_model_bound_any_allocation"), 18);
    assert_eq!(num(&shared, "d_model"), 18);
    assert_eq!(shared["residual"]["gap"], 0);
    assert_eq!(num(&alone, "d_model"), 31);
    assert_eq!(alone["residual"]["shared"], false);
    assert_eq!(num(&alone, "d_model_lower_bound"), 18);
    assert!(alone["d_model_bound_any_allocation"].is_null(), "{alone}");
    // the width objective needs sharing
    let (code, _, err) = tracr_opt(&["compile", "reverse", "--minimise", "layers,width", "--no-share-residual"]);
    assert_eq!(code, 1);
    assert!(err.contains("--minimise width needs residual sharing"), "{err}");
}

#[test]
fn negative_numbers_are_input_values_not_flags() {
    let dir = scratch("negative");
    let prog = dir.join("neg.rasp");
    std::fs::write(&prog, "y = Map(lambda x: -x, tokens)\ncompile(y, vocab={-4, 2, 3}, max_seq_len=3)\n").unwrap();
    let (code, out, err) = tracr_opt(&["eval", prog.to_str().unwrap(), "--input", "-4 2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[4, -2]");
    let model = dir.join("m");
    let (code, _, err) = tracr_opt(&["compile", prog.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "-4 3 -4"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[4, -3, 4]");
}

#[test]
fn settings_beyond_the_limits_are_refused_before_anything_is_built() {
    for (args, needle) in [
        (&["compile", "reverse", "--max-seq-len", "9223372036854775807"][..], "over the limit of 100000"),
        (&["compile", "reverse", "--max-seq-len", "2147483648"][..], "over the limit of 100000"),
        (&["verify", "reverse", "--samples", "1000000000"][..], "--samples 1000000000 is over the limit of 1000000"),
        (&["compile", "reverse", "--time-limit", "inf"][..], "--time-limit must be a positive number of seconds"),
        (&["compile", "reverse", "--time-limit", "1e300"][..], "--time-limit must be a positive number of seconds"),
    ] {
        let (code, _, err) = tracr_opt(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("internal error") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn writes_never_replace_links_or_special_files() {
    let dir = scratch("special");
    let target = dir.join("target.json");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, _, err) = tracr_opt(&["convert", "reverse", "-o", link.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("it is a symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let hard = dir.join("hard.json");
    std::fs::hard_link(&target, &hard).unwrap();
    let (code, _, err) = tracr_opt(&["convert", "reverse", "-o", hard.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("other hard links"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    let (code, _, err) = tracr_opt(&["convert", "reverse", "-o", "/dev/null"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // `-` is standard output; a plain file is replaced
    let (code, out, _) = tracr_opt(&["convert", "reverse", "-o", "-"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"format\": \"tracr-opt-program\""), "{out}");
    let plain = dir.join("plain.json");
    std::fs::write(&plain, "old").unwrap();
    assert_eq!(tracr_opt(&["convert", "reverse", "-o", plain.to_str().unwrap()]).0, 0);
    assert!(std::fs::read_to_string(&plain).unwrap().contains("tracr-opt-program"));
}

#[test]
fn run_refuses_metadata_that_does_not_fit_the_weights() {
    let dir = scratch("inconsistent");
    let model = dir.join("m");
    assert_eq!(tracr_opt(&["compile", "reverse", "--out", model.to_str().unwrap()]).0, 0);
    let meta_path = model.join("tracr_opt.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    for (what, edit, needle) in [
        ("no output values", ("output", serde_json::json!({"kind": "categorical", "values": []})), "d_vocab_out"),
        ("a token short", ("tokens", serde_json::json!(["BOS", "PAD", "a", "b"])), "d_vocab"),
        ("labels missing", ("residual_labels", serde_json::json!([])), "residual labels"),
    ] {
        let mut m = meta.clone();
        m[edit.0] = edit.1;
        std::fs::write(&meta_path, serde_json::to_string(&m).unwrap()).unwrap();
        let (code, out, err) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "a b"]);
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(err.contains("inconsistent model directory") && err.contains(needle), "{what}: {err}");
    }
    // the weights against the metadata: W_U negated, or its output values reordered
    std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let reordered = {
        let mut m = meta.clone();
        m["output"]["values"] = serde_json::json!(["b", "a", "c"]);
        m
    };
    std::fs::write(&meta_path, serde_json::to_string(&reordered).unwrap()).unwrap();
    let (code, _, err) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "a b"]);
    assert!(code == 1 && err.contains("unembed.W_U") && err.contains("reverse:b"), "reordered values: {err}");
    std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
    let negated = negate_tensor(&weights, "unembed.W_U");
    std::fs::write(model.join("model.safetensors"), negated).unwrap();
    let (code, _, err) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "a b"]);
    assert!(code == 1 && err.contains("unembed.W_U") && err.contains("is -1"), "negated W_U: {err}");
    std::fs::write(model.join("model.safetensors"), weights).unwrap();
    assert_eq!(tracr_opt(&["run", model.to_str().unwrap(), "--input", "a b"]).0, 0);
}

/// The safetensors file with one (f32) tensor's values negated in place.
fn negate_tensor(bytes: &[u8], name: &str) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header[name]["dtype"], "F32");
    let (start, end) = (
        header[name]["data_offsets"][0].as_u64().unwrap() as usize,
        header[name]["data_offsets"][1].as_u64().unwrap() as usize,
    );
    let mut out = bytes.to_vec();
    for c in out[8 + header_len + start..8 + header_len + end].chunks_exact_mut(4) {
        let v = -f32::from_le_bytes(c.try_into().unwrap());
        c.copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[test]
fn compile_reports_verification_time_and_says_what_its_figures_mean() {
    let (code, out, _) = tracr_opt(&["compile", "reverse", "--json"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let verify_ms = j["verified"]["verify_ms"].as_f64().expect("verify_ms");
    assert!(verify_ms > 0.0 && j["compile_ms"].as_f64().unwrap() > 0.0);
    let (_, text, _) = tracr_opt(&["compile", "reverse"]);
    assert!(text.contains("without residual sharing") && text.contains("MLP neurons only erase dead s-ops"), "{text}");
    assert!(text.contains("(head dimensions W_QK and W_OV use)") && text.contains("reverse[qk 6, ov 3]"), "{text}");
    assert!(text.contains("verified in "), "{text}");
}

#[test]
fn run_labels_its_logits_and_speaks_json() {
    let dir = scratch("run-json");
    let model = dir.join("m");
    assert_eq!(tracr_opt(&["compile", "sort", "--out", model.to_str().unwrap()]).0, 0);
    let (code, out, err) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "3 1 2", "--json", "--logits"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["output"], serde_json::json!([1, 2, 3]));
    assert_eq!(j["logit_columns"], serde_json::json!(["1", "2", "3"]));
    assert_eq!(j["logits"].as_array().unwrap().len(), 4, "BOS and three tokens");
    let (_, text, _) = tracr_opt(&["run", model.to_str().unwrap(), "--input", "3 1 2", "--logits"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "[1, 2, 3]");
    assert!(lines[1].starts_with("token") && lines[1].trim_end().ends_with('3'), "{text}");
    assert!(lines[2].starts_with("BOS") && lines[3].starts_with('3'), "{text}");
}

#[test]
fn compare_takes_causal_as_a_value_like_the_other_commands() {
    for causal in ["true", "false"] {
        let (code, out, err) = tracr_opt(&["compare", "length", "--causal", causal, "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rows[0]["causal"], serde_json::json!(causal == "true"), "{out}");
    }
}

/// A reader that stops early (`tracr-opt ... 2>&1 | head -1`) closes the
/// pipe: the tool stops quietly (141, as SIGPIPE would) or has finished
/// writing; before, a closed stderr aborted it from inside the panic hook.
#[test]
fn a_closed_stdout_or_stderr_is_not_a_crash() {
    use std::process::Stdio;
    for (args, stream) in [
        (vec!["list", "--show", "shuffle_dyck3"], "stdout"),
        (vec!["compile", "reverse", "--max-seq-len", "0"], "stderr"),
        (vec!["compile", "reverse"], "stdout"),
    ] {
        for _ in 0..5 {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracr-opt"));
            cmd.args(&args).stdin(Stdio::null());
            if stream == "stdout" {
                cmd.stdout(Stdio::piped()).stderr(Stdio::null());
            } else {
                cmd.stderr(Stdio::piped()).stdout(Stdio::null());
            }
            let mut child = cmd.spawn().expect("runs");
            // close the read end before the tool writes
            drop(child.stdout.take());
            drop(child.stderr.take());
            let code = child.wait().unwrap().code();
            assert!(matches!(code, Some(0 | 1 | 141)), "{args:?} with {stream} closed: {code:?}");
        }
    }
}
