#!/usr/bin/env bash
# One command for kvserve's benchmark tables (issues 2 and 4), written to docs/BENCHMARKS.md.
#
#   bench/run_benchmarks.sh [--quick] [--ns 1,8,32,64] [--build-dir DIR] [--cache-dir DIR]
#                           [--out FILE]
#
# A full run takes roughly 15-20 minutes on a quiet 2-core machine (llama.cpp at N=32 and 64
# dominates); check `uptime` first: the numbers mean nothing on a busy machine.
#
# 1. builds the bench binaries (kvserve_matmul_bench, kvserve_single_stream_bench,
#    kvserve_load_bench) in the build dir (default: <repo>/build) if needed;
# 2. makes the synthetic 360M-shape llama model (dim 960, 32 layers, 15 heads, 5 KV heads, FFN
#    2560, vocab 32000) as Q8_0 and F16 GGUF files in the cache dir (default
#    ~/.cache/kvserve/bench), once;
# 3. runs, with 2 threads for both engines: the oneDNN matmul ceiling per step; single-stream
#    prompt and decode tokens/s of kvserve (f32 weights, and bf16 where the CPU can) against
#    llama.cpp on the Q8_0 and F16 files; the concurrency table (P=16, T=64, N=1,8,32,64) of
#    kvserve against llama.cpp on the Q8_0 file, with ratios, the fraction of the matmul ceiling
#    reached and kvserve's step profile;
# 4. writes the results (and the machine, date and command) to docs/BENCHMARKS.md.
#
# --quick: N=1,8 only, shorter generations, one repetition, F16 file skipped (a try-out; the
# numbers are preliminary). Raw JSON lines are kept in the cache dir under results-*/.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="$here/build"
cache="${KVSERVE_BENCH_CACHE:-$HOME/.cache/kvserve/bench}"
out="$here/docs/BENCHMARKS.md"
quick=0
ns_override=""
cmdline="bench/run_benchmarks.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --ns) ns_override="$2"; shift ;;
    --build-dir) build="$2"; shift ;;
    --cache-dir) cache="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "run_benchmarks: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

shared="${KVSERVE_SHARED:-$here/../shared}"
py=/usr/bin/python3
threads=2
export OMP_NUM_THREADS="$threads" LLAMA_THREADS="$threads"

# Workload.
P=16
T=64
NS="1,8,32,64"
SS_PROMPT=128   # single stream: prompt tokens (prompt speed), then decode of SS_GEN tokens
SS_GEN=64
REPS=3
if [ "$quick" = 1 ]; then
  T=32; NS="1,8"; SS_GEN=32; REPS=1
fi
if [ -n "$ns_override" ]; then NS="$ns_override"; fi

log() { echo "run_benchmarks: $*" >&2; }

# 1. Build.
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
  log "configuring $build"
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
fi
log "building bench targets in $build"
cmake --build "$build" -j2 --target kvserve_matmul_bench kvserve_single_stream_bench \
  kvserve_load_bench >&2
bin="$build/bench"

# 2. Models.
mkdir -p "$cache"
make_model() {  # TYPE FILE
  [ -s "$2" ] && return 0
  log "writing $2 ($1)"
  "$py" "$here/scripts/make_model.py" --arch llama --dim 960 --layers 32 --heads 15 \
    --kv-heads 5 --ffn 2560 --vocab 32000 --type "$1" --seed 360 \
    --tokenizer-from "$shared/models/llama-2-tiny-random.gguf" --out "$2.tmp.$$"
  mv "$2.tmp.$$" "$2"
}
q8="$cache/llama360m-q8_0.gguf"
f16="$cache/llama360m-f16.gguf"
make_model Q8_0 "$q8"
files=("$q8")
if [ "$quick" = 0 ]; then make_model F16 "$f16"; files+=("$f16"); fi

# The llama.cpp oracle (node-llama-cpp); idempotent.
oracle_dir="$(bash "$here/scripts/install-oracle.sh" | tail -1)"
oracle() { node "$oracle_dir/llamacpp_oracle.mjs" bench "$@"; }

res="$cache/results-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$res"
log "results in $res"
uptime > "$res/load_before.txt"

# 3a. Matmul ceiling (f32; bf16 only where oneDNN has it).
log "matmul ceiling"
"$bin/kvserve_matmul_bench" --shape=smollm360 --dtype=all --m="$NS" --reps=$((REPS * 5)) > "$res/matmul.txt" 2>&1 || true

# 3b. Single stream.
for f in "${files[@]}"; do
  name="$(basename "$f" .gguf)"
  for dt in f32 bf16; do
    log "single stream kvserve $dt on $name"
    if ! "$bin/kvserve_single_stream_bench" --model "$f" --weight_dtype "$dt" \
        --prompt_len "$SS_PROMPT" --gen "$SS_GEN" --reps "$REPS" \
        > "$res/single_kvserve_${dt}_$name.json" 2> "$res/single_kvserve_${dt}_$name.err"; then
      log "  kvserve $dt failed: $(tail -1 "$res/single_kvserve_${dt}_$name.err")"
    fi
  done
  log "single stream llama.cpp on $name"
  oracle "$f" 1 "$SS_GEN" "$SS_PROMPT" > "$res/single_llamacpp_$name.json" \
    2> "$res/single_llamacpp_$name.err" || log "  llama.cpp failed on $name"
done

# 3c. Concurrency table on the Q8_0 file.
log "concurrency kvserve N=$NS"
"$bin/kvserve_load_bench" --model "$q8" --weight-dtype f32 --n "$NS" --prompt-len "$P" \
  --gen "$T" > "$res/load_kvserve.jsonl" 2> "$res/load_kvserve.err" ||
  log "  kvserve load bench failed: $(tail -1 "$res/load_kvserve.err")"
: > "$res/load_llamacpp.jsonl"
for n in ${NS//,/ }; do
  log "concurrency llama.cpp N=$n"
  oracle "$q8" "$n" "$T" "$P" >> "$res/load_llamacpp.jsonl" 2>> "$res/load_llamacpp.err" ||
    log "  llama.cpp failed at N=$n"
done
# 3d. The same concurrency table through the gRPC server (the gap is the server's cost).
log "concurrency kvserve over gRPC N=$NS"
cmake --build "$build" -j2 --target kvserve kvserve_proto >&2
"$py" "$here/bench/grpc_load_bench.py" --kvserve "$build/server/kvserve" --model "$q8" \
  --pb-dir "$build/proto/python" --n "$NS" --prompt-len "$P" --gen "$T" \
  > "$res/load_grpc.jsonl" 2> "$res/load_grpc.err" ||
  log "  gRPC load bench failed: $(tail -1 "$res/load_grpc.err")"
uptime > "$res/load_after.txt"

# 4. The report.
mkdir -p "$(dirname "$out")"
"$py" "$here/bench/write_report.py" --results "$res" --out "$out" --command "$cmdline" \
  --quick "$quick" --threads "$threads" --prompt-len "$P" --gen "$T" \
  --ss-prompt "$SS_PROMPT" --ss-gen "$SS_GEN"
log "wrote $out"
# Print the tables (everything before the kept notes).
sed '/<!-- notes: kept across runs -->/,$d' "$out"
