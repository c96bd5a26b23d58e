#!/usr/bin/env bash
# Side-by-side timings of `attn bench` against its peers (peers.py: JAX and
# PyTorch; the candle crate in benches/peers/candle when it is built), on
# one pinned core, alternating round by round, so anyone can reproduce a
# speed claim:
#
#   benches/peers/side_by_side.sh [-r ROUNDS] [-c CORE] [-s SAMPLES] [-p PYTHON]
#       [--attn PATH] [--candle PATH] [--build-candle] [--threads N]
#       WORKLOAD[,WORKLOAD...]
#
#   -r ROUNDS       rounds (default 3); each round runs every workload once
#                   per tool: attn, then peers.py, then candle
#   -c CORE         the CPU list given to `taskset -c` (default 0); with
#                   --threads N > 1 give N cores, e.g. -c 0-3
#   -s SAMPLES      --samples for every tool (default 7; attn wants >= 5)
#   -p PYTHON       the peers' python (default $PEERS_PYTHON, else
#                   ../peers-venv/bin/python relative to the repository root)
#   --attn PATH     attn binary (default target/release/attn, built with
#                   `cargo build --release --features cli` when missing)
#   --candle PATH   candle peer binary (default
#                   benches/peers/candle/target/release/candle-peer; optional:
#                   skipped with a note when it is not there)
#   --build-candle  build the candle peer first (it is also rebuilt, usually
#                   a no-op, whenever the default binary already exists)
#   --threads N     threads for attn's pool (default 1); peers always use 1
#
# Progress and errors go to stderr. Stdout gets a header (commit, CPU,
# attn's backend, date), one line per run, then a table: per workload, the
# median over rounds of each tool's per-round median, the ratio peer/ours,
# and ours' share of the roofline when `attn bench --json` reports one.
# Times are ms per call as each tool reports them: per decoder step for
# add-decode, per decoded token for seq2seq-token-*. A workload a tool does
# not know (or that fails) is reported as missing for that tool.
set -euo pipefail

usage() {
    sed -n '7,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "(the options are described at the top of $0)" >&2
    exit "${1:-2}"
}

die() {
    echo "side_by_side: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ROUNDS=3
CORE=0
SAMPLES=7
PYTHON=${PEERS_PYTHON:-../peers-venv/bin/python}
ATTN=""
CANDLE=""
BUILD_CANDLE=0
THREADS=1
WORKLOADS=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        -r) ROUNDS=${2:?-r needs a value}; shift 2 ;;
        -c) CORE=${2:?-c needs a value}; shift 2 ;;
        -s) SAMPLES=${2:?-s needs a value}; shift 2 ;;
        -p) PYTHON=${2:?-p needs a value}; shift 2 ;;
        --attn) ATTN=${2:?--attn needs a value}; shift 2 ;;
        --candle) CANDLE=${2:?--candle needs a value}; shift 2 ;;
        --build-candle) BUILD_CANDLE=1; shift ;;
        --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
        -h | --help) usage 0 ;;
        -*) echo "side_by_side: unknown option $1" >&2; usage ;;
        *) WORKLOADS=${WORKLOADS:+$WORKLOADS,}$1; shift ;;
    esac
done

[[ -n $WORKLOADS ]] || usage
for n in "$ROUNDS" "$SAMPLES" "$THREADS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer, got '$n'"
done
command -v taskset >/dev/null || die "taskset not found (util-linux)"
AGG_PYTHON=$(command -v python3 || true)
[[ -n $AGG_PYTHON ]] || AGG_PYTHON=$PYTHON

# attn: build the default binary when it is missing.
if [[ -z $ATTN ]]; then
    ATTN=target/release/attn
    if [[ ! -x $ATTN ]]; then
        echo "side_by_side: building $ATTN" >&2
        cargo build --release --features cli >&2
    fi
    newer=$(find src -newer "$ATTN" -name '*.rs' -print -quit)
    [[ -z $newer ]] || echo "side_by_side: note: $ATTN is older than $newer (rebuild with cargo build --release --features cli)" >&2
fi
[[ -x $ATTN ]] || die "attn binary not found: $ATTN"

# The peers: peers.py needs the venv; candle is optional.
if [[ ! -x $PYTHON ]] && ! command -v "$PYTHON" >/dev/null; then
    echo "side_by_side: note: peers python '$PYTHON' not found (set -p or PEERS_PYTHON); peers.py skipped" >&2
    PYTHON=""
fi
if [[ -z $CANDLE ]]; then
    CANDLE=benches/peers/candle/target/release/candle-peer
    if [[ $BUILD_CANDLE == 1 || -x $CANDLE ]]; then
        echo "side_by_side: building the candle peer" >&2
        cargo build --release --manifest-path benches/peers/candle/Cargo.toml >&2
    fi
elif [[ $BUILD_CANDLE == 1 ]]; then
    die "--build-candle builds the default candle binary; drop --candle or --build-candle"
fi
if [[ ! -x $CANDLE ]]; then
    echo "side_by_side: note: candle peer not built ($CANDLE); skipped (use --build-candle)" >&2
    CANDLE=""
fi
# The workloads the candle peer implements (it panics on any other).
CANDLE_KNOWS=",sdpa-decode,sdpa-decode-kt,sdpa-decode-ktc,sdpa-512,sdpa-causal-2048,add-batch,"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MANIFEST=$TMP/manifest.tsv
: >"$MANIFEST"

# run ROUND TOOL WORKLOAD CMD...: one pinned run, its JSON kept, a failure noted.
run() {
    local round=$1 tool=$2 workload=$3
    shift 3
    local out=$TMP/r$round.$tool.$workload.json err=$TMP/r$round.$tool.$workload.err
    echo "side_by_side: round $round/$ROUNDS: $tool $workload" >&2
    if taskset -c "$CORE" "$@" >"$out" 2>"$err"; then
        printf '%s\t%s\t%s\tok\t%s\n' "$round" "$tool" "$workload" "$out" >>"$MANIFEST"
    else
        local rc=$?
        echo "side_by_side: $tool $workload failed (exit $rc): $(tail -n 1 "$err")" >&2
        printf '%s\t%s\t%s\tfailed (exit %s): %s\t%s\n' "$round" "$tool" "$workload" "$rc" \
            "$(tail -n 1 "$err" | tr '\t' ' ')" "$out" >>"$MANIFEST"
    fi
}

IFS=, read -r -a LIST <<<"$WORKLOADS"
for ((round = 1; round <= ROUNDS; round++)); do
    for w in "${LIST[@]}"; do
        [[ -n $w ]] || continue
        run "$round" ours "$w" "$ATTN" bench --json --workload "$w" --samples "$SAMPLES" --threads "$THREADS"
        if [[ -n $PYTHON ]]; then
            run "$round" peers "$w" "$PYTHON" benches/peers/peers.py --json --workload "$w" --samples "$SAMPLES"
        fi
        if [[ -n $CANDLE && $CANDLE_KNOWS == *",$w,"* ]]; then
            run "$round" candle "$w" "$CANDLE" --json --workload "$w" --samples "$SAMPLES"
        fi
    done
done

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT (work tree modified)"; fi
CPU=$(grep -m 1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//' || true)

"$AGG_PYTHON" - "$MANIFEST" "$WORKLOADS" "$COMMIT" "${CPU:-unknown}" "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" \
    "$CORE" "$ROUNDS" "$SAMPLES" "$THREADS" <<'PY'
import json
import statistics
import sys

manifest, workloads, commit, cpu, date, core, rounds, samples, threads = sys.argv[1:]
workloads = [w for w in workloads.split(",") if w]

runs = []  # (round, tool, workload, status, doc)
for line in open(manifest):
    rnd, tool, workload, status, path = line.rstrip("\n").split("\t")
    doc = None
    if status == "ok":
        try:
            doc = json.load(open(path))
        except (OSError, ValueError) as e:
            status = f"unreadable JSON ({e})"
    runs.append((int(rnd), tool, workload, status, doc))

backend = next((d.get("backend") for _, t, _, _, d in runs if t == "ours" and d and d.get("backend")), None)
print(f"# side_by_side: commit {commit}, {date}")
print(f"# cpu: {cpu}; taskset -c {core}; attn backend {backend or '-'}, attn threads {threads}, peers 1 thread")
print(f"# {rounds} round(s) x {samples} samples; times in ms per call (add-decode: per step; seq2seq-token-*: per token)")
print()

# name -> workload -> [per-round result dicts]; ours' roofline per round.
per = {}
roofs = []
for rnd, tool, workload, status, doc in runs:
    results = [r for r in (doc or {}).get("results", []) if r.get("workload") == workload]
    if tool == "ours" and doc and isinstance(doc.get("roofline"), dict):
        roofs.append(doc["roofline"])
    if not results:
        why = status if status != "ok" else "no result for this workload"
        print(f"run round {rnd} {tool:<6} {workload:<18} missing: {why}")
        continue
    for r in results:
        name = "ours" if tool == "ours" else r.get("peer") or ("candle" if tool == "candle" else tool)
        per.setdefault(name, {}).setdefault(workload, []).append(r)
        print(f"run round {rnd} {name:<6} {workload:<18} median {r['median_ms']:.6g} ms  "
              f"min {r['min_ms']:.6g}  max {r['max_ms']:.6g}  samples {r.get('samples', '-')}")
print()


def med(name, workload):
    rs = per.get(name, {}).get(workload)
    return statistics.median(r["median_ms"] for r in rs) if rs else None


def roof_value(key):
    vals = [r[key] for r in roofs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def field(workload, key):
    for r in per.get("ours", {}).get(workload, []):
        if isinstance(r.get(key), (int, float)):
            return r[key]
    return None


def roofline(workload, ms):
    if ms is None:
        return "-"
    fma, read = roof_value("fma_gflops"), roof_value("read_gbs")
    flop, nbytes = field(workload, "flop"), field(workload, "bytes")
    if flop is not None and fma:
        rate = flop / (ms * 1e6)
        return f"{rate:.1f} GFLOP/s ({100 * rate / fma:.0f}% of {fma:.0f})"
    if nbytes is not None and read:
        rate = nbytes / (ms * 1e6)
        return f"{rate:.1f} GB/s ({100 * rate / read:.0f}% of {read:.0f})"
    return "-"


def fmt(ms):
    if ms is None:
        return "missing"
    return f"{ms:.0f}" if ms >= 1000 else f"{ms:#.4g}"


peers = [p for p in ("jax", "torch", "candle") if p in per] + sorted(set(per) - {"ours", "jax", "torch", "candle"})
print(f"{'workload':<18} {'ours ms':>10}  {'ours vs roofline':<28} {'peer':<7} {'peer ms':>10} {'peer/ours':>10}")
for w in workloads:
    ours = med("ours", w)
    rows = [(p, med(p, w)) for p in peers if w in per[p]] or [("-", None)]
    for i, (p, ms) in enumerate(rows):
        ratio = f"{ms / ours:.2f}x" if ms is not None and ours else "-"
        left = f"{w:<18} {fmt(ours):>10}  {roofline(w, ours):<28}" if i == 0 else " " * 59
        print(f"{left} {p:<7} {fmt(ms) if p != '-' else '-':>10} {ratio:>10}")
PY
