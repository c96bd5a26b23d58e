#!/usr/bin/env python3
"""The issue-5 workloads in JAX (jit of the d2l math) and PyTorch, for
side-by-side ratios against `attn bench` on the same core.

Install the peers in a virtual environment outside the repository:

    python3 -m venv ../peers-venv && ../peers-venv/bin/pip install jax torch

then run both on one core, back to back:

    taskset -c 1 ../peers-venv/bin/python benches/peers/peers.py --json > peers.json
    taskset -c 1 target/release/attn bench --json > ours.json

Shapes and timing follow `attn bench` (src/bin/attn/bench.rs): a warm-up,
then `--samples` timed calls, median/min/max in ms. A peer that is not
installed is skipped with a note on stderr.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def timed(fn, samples):
    fn()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": times[len(times) // 2], "min_ms": times[0], "max_ms": times[-1], "samples": samples}


def additive_inputs(b, q, k, h):
    rng = np.random.default_rng(0)
    n = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    lens = rng.integers(k // 2, k + 1, size=b)
    return (n(h, h) / np.sqrt(h), n(h, h) / np.sqrt(h), n(1, h) / np.sqrt(h), n(b, q, h), n(b, k, h), n(b, k, h), lens)


def jax_workloads(samples, wanted):
    if not wanted & {"add-decode", "add-batch", "add-long"}:
        return {}
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_platforms", "cpu")

    @jax.jit
    def additive(w_q, w_k, w_v, queries, keys, values, valid_lens):
        # d2l AdditiveAttention: materialises the (B, Q, K, H) features.
        features = jnp.tanh((queries @ w_q.T)[:, :, None, :] + (keys @ w_k.T)[:, None, :, :])
        scores = (features @ w_v.T)[..., 0]
        keep = jnp.arange(scores.shape[-1])[None, None, :] < valid_lens[:, None, None]
        weights = jax.nn.softmax(jnp.where(keep, scores, -1e6), axis=-1)
        return weights @ values, weights

    results = {}
    for name, (b, q, k, h, steps) in {
        "add-decode": (64, 1, 50, 256, 50),
        "add-batch": (32, 64, 64, 256, 0),
        "add-long": (4, 256, 512, 128, 0),
    }.items():
        if name not in wanted:
            continue
        args = [jnp.asarray(a) for a in additive_inputs(b, q, k, h)]

        def run(args=args, steps=max(steps, 1)):
            for _ in range(steps):
                out = additive(*args)
            jax.block_until_ready(out)

        r = timed(run, samples)
        for key in ("median_ms", "min_ms", "max_ms"):
            r[key] /= max(steps, 1)
        results[name] = r
    return results


def torch_workloads(samples, wanted):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    results = {}
    for name, (heads, l, s, e, causal) in {
        "sdpa-512": (32, 512, 512, 64, False),
        "sdpa-causal-2048": (8, 2048, 2048, 64, True),
        "sdpa-decode": (64, 1, 4096, 128, False),
    }.items():
        if name not in wanted:
            continue
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, heads, n, e, generator=g) for n in (l, s, s))

        def run(q=q, k=k, v=v, causal=causal):
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        results[name] = timed(run, samples)
    return results


WORKLOADS = ("add-decode", "add-batch", "add-long", "sdpa-512", "sdpa-causal-2048", "sdpa-decode")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workload", default=",".join(WORKLOADS), help="comma-separated workloads (default: all)")
    args = ap.parse_args()
    wanted = set(args.workload.split(","))
    results = {}
    for peer, fn in (("jax", jax_workloads), ("torch", torch_workloads)):
        try:
            for name, r in fn(args.samples, wanted).items():
                results[name] = dict(r, peer=peer, workload=name)
        except (ImportError, ValueError, OSError) as e:
            print(f"peers: {peer} skipped ({e})", file=sys.stderr)
    if args.json:
        print(json.dumps({"threads": 1, "results": list(results.values())}))
    else:
        for r in results.values():
            print(f"{r['workload']:<18} {r['peer']:<6} median {r['median_ms']:9.3f} ms  "
                  f"min {r['min_ms']:9.3f}  max {r['max_ms']:9.3f}")


if __name__ == "__main__":
    main()
