#!/usr/bin/env bash
# Seeds fuzz/corpus/ from the bundled programs and a few hand-made bad
# inputs (fuzz/seed/*.rasp, *.json). Run from anywhere after
# `cargo build --release`; the corpus it writes is committed, and libFuzzer
# adds what it finds beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/tracr-opt
out=fuzz/corpus
mkdir -p "$out/rasp" "$out/json" "$out/model_dir" "$out/compile"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for name in $(ls src/library/programs | sed -n "s/\.rasp$//p"); do
  $bin list --show "$name" >"$out/rasp/$name.rasp"
  cp "$out/rasp/$name.rasp" "$out/compile/$name.rasp"
  $bin convert "$name" --max-seq-len 3 >"$out/json/$name.json"
  cp "$out/json/$name.json" "$out/compile/$name.json"
done
cp fuzz/seed/*.rasp "$out/rasp/"
cp fuzz/seed/*.rasp "$out/compile/"
cp fuzz/seed/*.json "$out/json/"
# model directories at max_seq_len 3, both dtypes, with and without a rotation
for spec in "reverse f32" "hist f64" "frac_prevs f32" "sort f64" "length f32 --rotate 7" "shuffle_dyck f32"; do
  set -- $spec
  name=$1 dtype=$2
  shift 2
  $bin compile "$name" --max-seq-len 3 --dtype "$dtype" --out "$tmp/$name" "$@" --no-verify >/dev/null
  circuit=/dev/null
  [ -f "$tmp/$name/circuit.json" ] && circuit="$tmp/$name/circuit.json"
  python3 - "$tmp/$name" "$circuit" "$out/model_dir/$name-$dtype" <<'PY'
import sys
d, circuit, dest = sys.argv[1:]
sep = b"\n\0--8<--\0\n"
parts = [open(f"{d}/tracr_opt.json", "rb").read(), open(f"{d}/config.json", "rb").read(),
         open(circuit, "rb").read(), open(f"{d}/model.safetensors", "rb").read()]
open(dest, "wb").write(sep.join(parts))
PY
done
