"""d2l's dot-product, bilinear and multi-head attention and Nadaraya-Watson
regression against the golden cases, a float64 NumPy reference, and bad
arguments."""

import unittest

import numpy as np

import simd_attention as sa
from golden import assert_close, load
from refusals import Refusals


def masked_softmax(scores, valid_lens):
    """d2l's masked softmax in float64: keys past a row's length get -1e6."""
    if valid_lens is not None:
        lens = valid_lens if valid_lens.ndim == 2 else np.repeat(valid_lens[:, None], scores.shape[1], axis=1)
        scores = np.where(np.arange(scores.shape[-1]) < lens[..., None], scores, -1e6)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dot_reference(q, k, v, valid_lens=None):
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    weights = masked_softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]), valid_lens)
    return weights @ v, weights


def mha_reference(q, k, v, heads, w_q, w_k, w_v, w_o, valid_lens=None):
    """d2l's MultiHeadAttention (bias=False) in float64."""
    def split(x):  # (B, S, H) -> (B*heads, S, H/heads), d2l's transpose_qkv
        b, s, h = x.shape
        return x.reshape(b, s, heads, h // heads).transpose(0, 2, 1, 3).reshape(b * heads, s, h // heads)

    w_q, w_k, w_v, w_o = (np.asarray(w, dtype=np.float64) for w in (w_q, w_k, w_v, w_o))
    lens = None if valid_lens is None else np.repeat(valid_lens, heads, axis=0)
    out, weights = dot_reference(split(q @ w_q.T), split(k @ w_k.T), split(v @ w_v.T), lens)
    b = q.shape[0]
    concat = out.reshape(b, heads, q.shape[1], -1).transpose(0, 2, 1, 3).reshape(b, q.shape[1], -1)
    return concat @ w_o.T, weights


class Golden(unittest.TestCase):
    def test_dot_and_bilinear(self):
        for name in ["dot-lens1d", "dot-nomask"]:
            t, _ = load(name)
            out, weights = sa.dot_product_attention(t["queries"], t["keys"], t["values"], t.get("valid_lens"))
            assert_close(self, out, t["expected.output"], f"{name} output")
            assert_close(self, weights, t["expected.attention_weights"], f"{name} weights")
        t, _ = load("bilinear-lens1d")
        out, weights = sa.bilinear_attention(t["queries"], t["keys"], t["values"], t["W_a.weight"], t["valid_lens"])
        assert_close(self, out, t["expected.output"], "bilinear output")
        assert_close(self, weights, t["expected.attention_weights"], "bilinear weights")

    def test_multi_head(self):
        for name in ["mha-2heads", "mha-4heads-2d"]:
            t, meta = load(name)
            out, weights = sa.multi_head_attention(
                t["queries"], t["keys"], t["values"], int(meta["num_heads"]),
                t["W_q.weight"], t["W_k.weight"], t["W_v.weight"], t["W_o.weight"], valid_lens=t["valid_lens"],
            )
            assert_close(self, out, t["expected.output"], f"{name} output")
            assert_close(self, weights, t["expected.attention_weights"], f"{name} weights")

    def test_nadaraya_watson(self):
        t, _ = load("nadaraya-watson")
        out, weights = sa.nadaraya_watson(t["queries"], t["keys"], t["values"], float(t["w"][0]))
        assert_close(self, out, t["expected.output"], "output")
        assert_close(self, weights, t["expected.attention_weights"], "weights")


class AgainstReference(unittest.TestCase):
    def test_shapes_lengths_and_biases(self):
        r = np.random.default_rng(5)
        f32 = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
        for (b, nq, nk, d, vd) in [(3, 5, 70, 16, 8), (1, 1, 1, 4, 4), (9, 2, 33, 8, 3)]:
            q, k, v = f32(b, nq, d), f32(b, nk, d), f32(b, nk, vd)
            lens = r.integers(0, nk + 1, size=b)
            for l in [None, lens]:
                out, weights = sa.dot_product_attention(q, k, v, l)
                want_out, want_w = dot_reference(q, k, v, l)
                np.testing.assert_allclose(out, want_out, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(weights, want_w, rtol=1e-4, atol=1e-6)
            w_a = f32(d, 5)
            k5 = f32(b, nk, 5)
            out, weights = sa.bilinear_attention(q, k5, v, w_a, lens)
            scores = q.astype(np.float64) @ (k5.astype(np.float64) @ w_a.T.astype(np.float64)).transpose(0, 2, 1)
            want_w = masked_softmax(scores, lens)
            np.testing.assert_allclose(weights, want_w, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(out, want_w @ v, rtol=1e-4, atol=1e-5)
            ws = [f32(8, d), f32(8, d), f32(8, vd), f32(8, 8)]
            out, weights = sa.multi_head_attention(q, k, v, 2, *ws, valid_lens=lens)
            want_out, want_w = mha_reference(q, k, v, 2, *ws, lens)
            self.assertEqual(weights.shape, (2 * b, nq, nk))
            np.testing.assert_allclose(out, want_out, rtol=1e-3, atol=1e-4)
            np.testing.assert_allclose(weights, want_w, rtol=1e-4, atol=1e-6)
            biases = [f32(8), f32(8), f32(8), f32(8)]
            out, _ = sa.multi_head_attention(q, k, v, 4, *ws, b_q=biases[0], b_k=biases[1], b_v=biases[2], b_o=biases[3])
            wq, wk, wv, wo = (w.astype(np.float64) for w in ws)
            split_free = [q @ wq.T + biases[0], k @ wk.T + biases[1], v @ wv.T + biases[2]]
            heads_out = mha_reference(*split_free, 4, np.eye(8), np.eye(8), np.eye(8), np.eye(8))[0]
            np.testing.assert_allclose(out, heads_out @ wo.T + biases[3], rtol=1e-3, atol=1e-4)

    def test_nadaraya_watson_reference(self):
        r = np.random.default_rng(8)
        q = r.uniform(0, 5, 40).astype(np.float32)
        k, v = r.uniform(0, 5, (40, 39)).astype(np.float32), r.standard_normal((40, 39)).astype(np.float32)
        out, weights = sa.nadaraya_watson(q, k, v, 1.7)
        want_w = masked_softmax((-(((q[:, None] - k) * 1.7) ** 2) / 2)[None].astype(np.float64), None)[0]
        np.testing.assert_allclose(weights, want_w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(out, (want_w * v).sum(axis=1), rtol=1e-4, atol=1e-5)


class BadArguments(Refusals, unittest.TestCase):
    def test_each_refusal_names_its_argument(self):
        q, k, v = np.ones((2, 3, 4), np.float32), np.ones((2, 5, 4), np.float32), np.ones((2, 5, 6), np.float32)
        w, w6, w8 = np.ones((8, 4), np.float32), np.ones((8, 6), np.float32), np.ones((8, 8), np.float32)
        dot = sa.dot_product_attention
        self.refuses(TypeError, ["`queries`", "float32", "float64"], lambda: dot(q.astype(float), k, v))
        self.refuses(ValueError, ["`keys`", "3 dimensions"], lambda: dot(q, k[0], v))
        self.refuses(ValueError, ["`keys`", "(2, 5, 4)", "(2, 5, 3)"], lambda: dot(q, k[..., :3], v))
        self.refuses(ValueError, ["`keys`", "(2, K, kd)", "(1, 5, 4)"], lambda: dot(q, k[:1], v))
        self.refuses(ValueError, ["`values`", "(2, 5, vd)", "(2, 4, 6)"], lambda: dot(q, k, v[:, :4]))
        self.refuses(ValueError, ["`valid_lens`", "(2,)", "(3,)"], lambda: dot(q, k, v, [1, 2, 3]))
        self.refuses(ValueError, ["`valid_lens`", "at least 0", "-2"], lambda: dot(q, k, v, [1, -2]))
        self.refuses(TypeError, ["`valid_lens`", "integer"], lambda: dot(q, k, v, [1.0, 2.0]))
        self.refuses(ValueError, ["`valid_lens`"], lambda: dot(q, k, v, [[1], [1, 2]]))  # ragged
        self.refuses(ValueError, ["`queries`"], lambda: dot([[[1.0]], [[1.0, 2.0]]], k, v))  # ragged
        self.refuses(ValueError, ["`w_a`", "(4, 4)", "(8, 4)"], lambda: sa.bilinear_attention(q, k, v, w))
        mha = sa.multi_head_attention
        self.refuses(ValueError, ["`num_heads`", "a divisor of num_hiddens 8", "3"], lambda: mha(q, k, v, 3, w, w, w6, w8))
        self.refuses(ValueError, ["`num_heads`", "at least 0"], lambda: mha(q, k, v, -1, w, w, w6, w8))
        self.refuses(ValueError, ["`w_v`", "(8, 6)", "(8, 4)"], lambda: mha(q, k, v, 2, w, w, w, w8))
        self.refuses(ValueError, ["`w_k`", "(8, 4)", "(4, 8)"], lambda: mha(q, k, v, 2, w, w.reshape(4, 8), w6, w8))
        self.refuses(ValueError, ["`w_o`", "(8, 8)", "(4, 16)"], lambda: mha(q, k, v, 2, w, w, w6, w8.reshape(4, 16)))
        self.refuses(ValueError, ["`w_q`", "(H, 4)", "(8, 5)"], lambda: mha(q, k, v, 2, np.ones((8, 5), np.float32), w, w6, w8))
        self.refuses(ValueError, ["`b_q`", "(8,)", "(3,)"], lambda: mha(q, k, v, 2, w, w, w6, w8, b_q=np.ones(3, np.float32)))
        self.refuses(ValueError, ["`b_o`", "(8,)", "(2, 4)"], lambda: mha(q, k, v, 2, w, w, w6, w8, b_o=np.ones((2, 4), np.float32)))
        nq, nk = np.ones(3, np.float32), np.ones((3, 4), np.float32)
        nw = sa.nadaraya_watson
        self.refuses(ValueError, ["`queries`", "1 dimension"], lambda: nw(nk, nk, nk, 1.0))
        self.refuses(ValueError, ["`keys`", "(3, m)", "(4,)"], lambda: nw(nq, nk[0], nk, 1.0))
        self.refuses(ValueError, ["`values`", "(3, 4)", "(3, 3)"], lambda: nw(nq, nk, nk[:, :3], 1.0))
        self.refuses(TypeError, ["`w`", "a float", "'a'"], lambda: nw(nq, nk, nk, "a"))

    def test_empty_outputs_numpy_cannot_shape_name_their_result(self):
        # A batch of 0 over 2**40 keys: nothing to compute, yet the weights'
        # shape (0, 2**40, 2**40) spans more bytes than NumPy can index.
        big = 1 << 40
        q, k, v = (zero_strided((0, big, d)) for d in (3, 3, 2))
        words = ["`attention_weights`", "(0, 1099511627776, 1099511627776)"]
        self.refuses(ValueError, words, lambda: sa.dot_product_attention(q, k, v))
        self.refuses(ValueError, words, lambda: sa.bilinear_attention(q, k, v, np.ones((3, 3), np.float32)))
        # Where the shape fits, the empty result comes back.
        out, weights = sa.dot_product_attention(*(zero_strided((0, 1 << 20, d)) for d in (3, 3, 2)))
        self.assertEqual((out.shape, weights.shape), ((0, 1 << 20, 2), (0, 1 << 20, 1 << 20)))


def zero_strided(shape):
    """A float32 array of `shape` over a single value (every stride 0)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=shape, strides=(0,) * len(shape))


if __name__ == "__main__":
    unittest.main()
