#!/usr/bin/env bash
# Thread scaling of `attn bench`: alternates --threads 1 and --threads N for
# ROUNDS rounds on the cores CORES, then prints, per workload, the median of
# the per-round medians at each count and their ratio (1 thread / N threads).
#
#   benches/threads.sh [-r ROUNDS] [-n THREADS] [-c CORES] [-s SAMPLES] WORKLOAD[,WORKLOAD...]
#
# Defaults: 3 rounds, 2 threads, cores 0,1, 7 samples; target/release/attn
# (built with `cargo build --release --features cli` when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=3 THREADS=2 CORES=0,1 SAMPLES=7
while getopts "r:n:c:s:" opt; do
    case $opt in
        r) ROUNDS=$OPTARG ;; n) THREADS=$OPTARG ;; c) CORES=$OPTARG ;; s) SAMPLES=$OPTARG ;;
        *) echo "usage: $0 [-r ROUNDS] [-n THREADS] [-c CORES] [-s SAMPLES] WORKLOADS" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 1 ]] || { echo "usage: $0 [-r ROUNDS] [-n THREADS] [-c CORES] [-s SAMPLES] WORKLOADS" >&2; exit 2; }
ATTN=target/release/attn
[[ -x $ATTN ]] || cargo build --release --features cli
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "# threads.sh: commit $(git rev-parse --short HEAD), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), cores $CORES, $(date -u '+%F %T UTC')"
for r in $(seq "$ROUNDS"); do
    for t in 1 "$THREADS"; do
        taskset -c "$CORES" "$ATTN" bench --json --workload "$1" --threads "$t" --samples "$SAMPLES" > "$DIR/r$r-t$t.json"
    done
done
python3 - "$DIR" "$ROUNDS" "$THREADS" <<'PY'
import json, statistics, sys
d, rounds, n = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {t: [json.load(open(f"{d}/r{r}-t{t}.json")) for r in range(1, rounds + 1)] for t in ("1", n)}
print(f"{'workload':<18} {'1 thread ms':>12} {n + ' threads ms':>13} {'speed-up':>9}   per round")
for i, res in enumerate(runs["1"][0]["results"]):
    one = [run["results"][i]["median_ms"] for run in runs["1"]]
    many = [run["results"][i]["median_ms"] for run in runs[n]]
    per_round = " ".join(f"{a / b:.2f}" for a, b in zip(one, many))
    print(f"{res['workload']:<18} {statistics.median(one):>12.4f} {statistics.median(many):>13.4f} "
          f"{statistics.median(one) / statistics.median(many):>8.2f}x   {per_round}")
PY
