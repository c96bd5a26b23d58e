#!/usr/bin/env bash
# Alternates several `attn bench` configurations round by round on the same
# cores, then prints, per workload, each one's median of its per-round
# medians and its speed-up over the first configuration. For A/B claims
# between builds, backends or thread counts:
#
#   benches/alternate.sh [-r ROUNDS] [-c CORES] [-s SAMPLES] WORKLOAD[,WORKLOAD...] CONFIG...
#
# A CONFIG is `LABEL|COMMAND|EXTRA`: COMMAND is an attn binary, optionally
# behind `env VAR=VALUE`, and EXTRA is appended to its `bench` options.
# Examples:
#
#   benches/alternate.sh -c 0,1 add-batch,sdpa-512 't1|target/release/attn|--threads 1' 't2|target/release/attn|--threads 2'
#   benches/alternate.sh sdpa-decode 'old|env SIMD_ATTENTION_BACKEND=avx2 ../old/target/release/attn|' 'new|env SIMD_ATTENTION_BACKEND=avx2 target/release/attn|'
#
# Defaults: 3 rounds, core 0, 7 samples.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=3 CORES=0 SAMPLES=7
usage() { sed -n '7p' "$0" | sed 's/^#  *//' >&2; exit 2; }
while getopts "r:c:s:" opt; do
    case $opt in
        r) ROUNDS=$OPTARG ;; c) CORES=$OPTARG ;; s) SAMPLES=$OPTARG ;; *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -ge 2 ]] || usage
WORKLOADS=$1
shift
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "# alternate.sh: commit $(git rev-parse --short HEAD), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), cores $CORES, $ROUNDS rounds x $SAMPLES samples, $(date -u '+%F %T UTC')"
for r in $(seq "$ROUNDS"); do
    i=0
    for config in "$@"; do
        IFS='|' read -r label command extra <<< "$config"
        echo "# round $r: $label" >&2
        # shellcheck disable=SC2086 # COMMAND and EXTRA are word lists on purpose
        taskset -c "$CORES" $command bench --json --workload "$WORKLOADS" --samples "$SAMPLES" $extra > "$DIR/r$r-c$i.json"
        echo "$label" > "$DIR/label$i"
        i=$((i + 1))
    done
done
python3 - "$DIR" "$ROUNDS" "$#" <<'PY'
import json, statistics, sys
d, rounds, configs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
labels = [open(f"{d}/label{i}").read().strip() for i in range(configs)]
runs = [[json.load(open(f"{d}/r{r}-c{i}.json")) for r in range(1, rounds + 1)] for i in range(configs)]
print(f"{'workload':<18} {'config':<14} {'median ms':>11}  {'vs ' + labels[0]:>10}   per round")
for w, res in enumerate(runs[0][0]["results"]):
    base = statistics.median(run["results"][w]["median_ms"] for run in runs[0])
    for i, label in enumerate(labels):
        meds = [run["results"][w]["median_ms"] for run in runs[i]]
        m = statistics.median(meds)
        print(f"{res['workload']:<18} {label:<14} {m:>11.4f}  {base / m:>9.3f}x   " + " ".join(f"{x:.4f}" for x in meds))
PY
