//! No build step: this script exists so that `[build-dependencies]` in
//! Cargo.toml take part in feature resolution (cargo ignores them without a
//! build script). See the comment on `syn` there.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
}
