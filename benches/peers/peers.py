#!/usr/bin/env python3
"""The issue-5 workloads in JAX (jit of the d2l math) and PyTorch, for
side-by-side ratios against `attn bench` on the same core.

Install the peers in a virtual environment outside the repository:

    python3 -m venv ../peers-venv && ../peers-venv/bin/pip install jax torch numpy safetensors

then run both on one core, back to back:

    taskset -c 1 ../peers-venv/bin/python benches/peers/peers.py --json > peers.json
    taskset -c 1 target/release/attn bench --json > ours.json

or let benches/peers/side_by_side.sh alternate them (and candle) for a few
rounds and print the ratios.

Shapes and timing follow `attn bench` (src/bin/attn/bench.rs): a warm-up,
then `--samples` timed calls, median/min/max in ms. A peer that is not
installed is skipped with a note on stderr.

`seq2seq-token-b1` and `seq2seq-token-b64` (PyTorch eager, needs
`safetensors` too) are d2l's Bahdanau seq2seq (`Seq2SeqEncoder` +
`Seq2SeqAttentionDecoder`, the trained tests/data/reverse-bahdanau.safetensors)
decoding greedily as d2l's `EncoderDecoder.predict_step` does: the encoder over
the padded batch, then `num_steps` = 10 decoder steps, no early stop, under
`torch.no_grad()` on one thread. Sources are seeded random strings of 3 to 8
digits + `<eos>`, padded with `<pad>` to 10, batch 1 and batch 64. One timed
call is one whole decode (encoder + 10 steps); its median_ms/min_ms/max_ms
are divided by batch × 10, i.e. they are milliseconds per decoded token.
Setup asserts that the source `3 1 4 1 5 9` decodes to `9 5 1 4 1 3` (what
`attn decode 3 1 4 1 5 9` prints) and fails loudly otherwise.
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


# (heads, L, S, E, causal, dtype). PyTorch's SDPA wants Q, K and V in one
# dtype, so the reduced-precision decodes run with the query in that dtype
# too; it has no int8 SDPA, so `sdpa-decode-q8` is held to its bf16 decode,
# the fastest PyTorch has (the target is stated against it).
TORCH_SDPA = {
    "sdpa-512": (32, 512, 512, 64, False, "float32"),
    "sdpa-512-bf16": (32, 512, 512, 64, False, "bfloat16"),
    "sdpa-causal-2048": (8, 2048, 2048, 64, True, "float32"),
    "sdpa-decode": (64, 1, 4096, 128, False, "float32"),
    "sdpa-decode-bf16": (64, 1, 4096, 128, False, "bfloat16"),
    "sdpa-decode-f16": (64, 1, 4096, 128, False, "float16"),
    "sdpa-decode-q8": (64, 1, 4096, 128, False, "bfloat16"),
}


def torch_workloads(samples, wanted):
    if not wanted & set(TORCH_SDPA):
        return {}
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    results = {}
    for name, (heads, l, s, e, causal, dtype) in TORCH_SDPA.items():
        if name not in wanted:
            continue
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, heads, n, e, generator=g).to(getattr(torch, dtype)) for n in (l, s, s))

        def run(q=q, k=k, v=v, causal=causal):
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        results[name] = timed(run, samples)
    return results


SEQ2SEQ_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data",
                             "reverse-bahdanau.safetensors")


def seq2seq_workloads(samples, wanted):
    batches = {name: b for name, b in (("seq2seq-token-b1", 1), ("seq2seq-token-b64", 64)) if name in wanted}
    if not batches:
        return {}
    import torch
    from torch import nn
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    with safe_open(SEQ2SEQ_MODEL, "np") as f:
        meta = f.metadata()
    vocab = json.loads(meta["vocab"])
    bos, eos, pad = int(meta["bos"]), int(meta["eos"]), int(meta["pad"])
    num_steps, embed, hidden, layers = (int(meta[k]) for k in ("num_steps", "embed_size", "num_hiddens", "num_layers"))

    def masked_softmax(x, valid_lens):
        # d2l: positions past valid_len get -1e6 before the softmax.
        shape = x.shape
        lens = torch.repeat_interleave(valid_lens, shape[1])
        x = x.reshape(-1, shape[-1])
        mask = torch.arange(shape[-1], dtype=torch.float32)[None, :] < lens[:, None]
        x[~mask] = -1e6
        return nn.functional.softmax(x.reshape(shape), dim=-1)

    class AdditiveAttention(nn.Module):
        def __init__(self, num_hiddens):
            super().__init__()
            self.W_k = nn.Linear(num_hiddens, num_hiddens, bias=False)
            self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=False)
            self.w_v = nn.Linear(num_hiddens, 1, bias=False)
            self.dropout = nn.Dropout(0)

        def forward(self, queries, keys, values, valid_lens):
            queries, keys = self.W_q(queries), self.W_k(keys)
            features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))
            scores = self.w_v(features).squeeze(-1)
            self.attention_weights = masked_softmax(scores, valid_lens)
            return torch.bmm(self.dropout(self.attention_weights), values)

    class GRU(nn.Module):  # d2l.GRU: the nn.GRU is `.rnn`, hence encoder.rnn.rnn.*
        def __init__(self, num_inputs, num_hiddens, num_layers):
            super().__init__()
            self.rnn = nn.GRU(num_inputs, num_hiddens, num_layers)

        def forward(self, inputs, h=None):
            return self.rnn(inputs, h)

    class Seq2SeqEncoder(nn.Module):
        def __init__(self, vocab_size, embed_size, num_hiddens, num_layers):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.rnn = GRU(embed_size, num_hiddens, num_layers)

        def forward(self, x, *args):
            embs = self.embedding(x.t().type(torch.int64))  # (num_steps, B, E)
            return self.rnn(embs)  # outputs (num_steps, B, H), state (layers, B, H)

    class Seq2SeqAttentionDecoder(nn.Module):
        def __init__(self, vocab_size, embed_size, num_hiddens, num_layers):
            super().__init__()
            self.attention = AdditiveAttention(num_hiddens)
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.rnn = nn.GRU(embed_size + num_hiddens, num_hiddens, num_layers)
            self.dense = nn.Linear(num_hiddens, vocab_size)

        def init_state(self, enc_outputs, enc_valid_lens):
            outputs, hidden_state = enc_outputs
            return (outputs.permute(1, 0, 2), hidden_state, enc_valid_lens)

        def forward(self, x, state):
            enc_outputs, hidden_state, enc_valid_lens = state
            x = self.embedding(x).permute(1, 0, 2)
            outputs = []
            for x_t in x:
                query = torch.unsqueeze(hidden_state[-1], dim=1)  # (B, 1, H)
                context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)
                x_t = torch.cat((context, torch.unsqueeze(x_t, dim=1)), dim=-1)
                out, hidden_state = self.rnn(x_t.permute(1, 0, 2), hidden_state)
                outputs.append(out)
            outputs = self.dense(torch.cat(outputs, dim=0))
            return outputs.permute(1, 0, 2), [enc_outputs, hidden_state, enc_valid_lens]

    encoder = Seq2SeqEncoder(len(vocab), embed, hidden, layers)
    decoder = Seq2SeqAttentionDecoder(len(vocab), embed, hidden, layers)
    state = load_file(SEQ2SEQ_MODEL)
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    encoder.eval()
    decoder.eval()

    def predict(src, src_valid_len):
        # d2l EncoderDecoder.predict_step: no early stop, encoder included.
        with torch.no_grad():
            enc_all_outputs = encoder(src, src_valid_len)
            dec_state = decoder.init_state(enc_all_outputs, src_valid_len)
            outputs = [torch.full((src.shape[0], 1), bos, dtype=torch.int64)]
            for _ in range(num_steps):
                y, dec_state = decoder(outputs[-1], dec_state)
                outputs.append(y.argmax(2))
            return torch.cat(outputs[1:], 1)

    def sources(rows):
        ids = [[vocab.index(t) for t in row] + [eos] for row in rows]
        lens = torch.tensor([len(r) for r in ids])
        return torch.tensor([r + [pad] * (num_steps - len(r)) for r in ids]), lens

    def words(tokens):
        out = []
        for t in tokens.tolist():
            if t == eos:
                break
            out.append(vocab[t])
        return " ".join(out)

    got = words(predict(*sources(["3 1 4 1 5 9".split()]))[0])
    if got != "9 5 1 4 1 3":
        raise AssertionError(f"seq2seq: `3 1 4 1 5 9` decoded to `{got}`, expected `9 5 1 4 1 3`")

    rng = np.random.default_rng(0)
    results = {}
    for name, b in batches.items():
        rows = [[str(d) for d in rng.integers(0, 10, size=rng.integers(3, 9))] for _ in range(b)]
        src, lens = sources(rows)
        r = timed(lambda src=src, lens=lens: predict(src, lens), samples)
        for key in ("median_ms", "min_ms", "max_ms"):
            r[key] /= b * num_steps
        results[name] = r
    return results


WORKLOADS = ("add-decode", "add-batch", "add-long", "sdpa-512", "sdpa-512-bf16", "sdpa-causal-2048", "sdpa-decode",
             "sdpa-decode-bf16", "sdpa-decode-f16", "sdpa-decode-q8", "seq2seq-token-b1", "seq2seq-token-b64")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workload", default=",".join(WORKLOADS), help="comma-separated workloads (default: all)")
    args = ap.parse_args()
    wanted = set(args.workload.split(","))
    results = {}
    for peer, fn in (("jax", jax_workloads), ("torch", torch_workloads), ("torch", seq2seq_workloads)):
        try:
            for name, r in fn(args.samples, wanted).items():
                results[name] = dict(r, peer=peer, workload=name)
        except (ImportError, ValueError, OSError) as e:
            print(f"peers: {peer} skipped ({e})", file=sys.stderr)
    if args.json:
        print(json.dumps({"threads": 1, "results": list(results.values())}))
    else:
        for r in results.values():
            print(f"{r['workload']:<18} {r['peer']:<6} median {r['median_ms']:10.4f} ms  "
                  f"min {r['min_ms']:10.4f}  max {r['max_ms']:10.4f}")


if __name__ == "__main__":
    main()
