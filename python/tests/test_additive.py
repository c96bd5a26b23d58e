"""``additive_attention`` against the golden cases, a float64 NumPy reference of
d2l's ``AdditiveAttention``, and bad arguments."""

import unittest

import numpy as np

import simd_attention as sa
from golden import assert_close, load
from refusals import Refusals


def reference(q, k, v, w_q, w_k, w_v, valid_lens=None):
    """d2l's additive attention and masked softmax, in float64."""
    q, k, v, w_q, w_k, w_v = (np.asarray(x, dtype=np.float64) for x in (q, k, v, w_q, w_k, w_v))
    scores = np.tanh((q @ w_q.T)[:, :, None, :] + (k @ w_k.T)[:, None, :, :]) @ w_v.reshape(-1)
    if valid_lens is not None:
        lens = valid_lens if valid_lens.ndim == 2 else np.repeat(valid_lens[:, None], q.shape[1], axis=1)
        scores = np.where(np.arange(k.shape[1]) < lens[..., None], scores, -1e6)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ v, weights


class Golden(unittest.TestCase):
    def test_golden_cases(self):
        for name in ["additive-d2l-toy", "additive-lens1d-edges", "additive-lens2d", "additive-nomask", "additive-saturated"]:
            t, _ = load(name)
            out, weights = sa.additive_attention(
                t["queries"], t["keys"], t["values"], t["W_q.weight"], t["W_k.weight"], t["w_v.weight"],
                valid_lens=t.get("valid_lens"),
            )
            assert_close(self, out, t["expected.output"], f"{name} output")
            assert_close(self, weights, t["expected.attention_weights"], f"{name} weights")


class AgainstReference(unittest.TestCase):
    def test_shapes_and_lengths(self):
        r = np.random.default_rng(11)
        for (b, nq, nk, qd, kd, vd, h) in [(2, 3, 10, 5, 7, 4, 8), (1, 1, 300, 32, 32, 16, 64), (4, 9, 17, 3, 3, 2, 6)]:
            q, k, v = (r.standard_normal(s).astype(np.float32) for s in [(b, nq, qd), (b, nk, kd), (b, nk, vd)])
            w_q, w_k = r.standard_normal((h, qd)).astype(np.float32), r.standard_normal((h, kd)).astype(np.float32)
            w_v = r.standard_normal((1, h)).astype(np.float32)
            for lens in [None, r.integers(1, nk + 3, b), r.integers(1, nk + 1, (b, nq)).astype(np.int32)]:
                out, weights = sa.additive_attention(q, k, v, w_q, w_k, w_v[0], valid_lens=lens)
                want_out, want_weights = reference(q, k, v, w_q, w_k, w_v, lens)
                assert_close(self, out, want_out, f"output, lens {lens}")
                assert_close(self, weights, want_weights, f"weights, lens {lens}")


class BadArguments(Refusals, unittest.TestCase):
    args = {
        "queries": np.zeros((2, 3, 4), np.float32),
        "keys": np.zeros((2, 5, 6), np.float32),
        "values": np.zeros((2, 5, 7), np.float32),
        "w_q": np.zeros((8, 4), np.float32),
        "w_k": np.zeros((8, 6), np.float32),
        "w_v": np.zeros((1, 8), np.float32),
    }

    def refuses(self, error, words, **kw):
        super().refuses(error, words, lambda: sa.additive_attention(**{**self.args, **kw}))

    def test_messages_name_the_argument(self):
        self.refuses(TypeError, ["`keys`", "float16"], keys=self.args["keys"].astype(np.float16))
        self.refuses(ValueError, ["`queries`", "3 dimensions"], queries=np.zeros((3, 4), np.float32))
        self.refuses(ValueError, ["`w_k`", "(8, 6)", "(8, 5)"], w_k=np.zeros((8, 5), np.float32))
        self.refuses(ValueError, ["`w_q`", "(H, 4)", "(32,)"], w_q=np.zeros(32, np.float32))
        self.refuses(ValueError, ["`w_q`", "(H, 4)", "(4, 8)"], w_q=np.zeros((4, 8), np.float32))  # transposed
        self.refuses(ValueError, ["`w_k`", "(8, 6)", "(6, 8)"], w_k=np.zeros((6, 8), np.float32))  # transposed
        self.refuses(ValueError, ["`w_k`", "(8, 6)", "(8, 6, 1)"], w_k=np.zeros((8, 6, 1), np.float32))
        self.refuses(ValueError, ["`w_v`", "(1, 8) or (8,)", "(2, 4)"], w_v=np.zeros((2, 4), np.float32))
        self.refuses(ValueError, ["`valid_lens`", "(2,) or (2, 3)", "(3,)"], valid_lens=np.array([1, 2, 3]))
        self.refuses(ValueError, ["`valid_lens`", "at least 0", "-2"], valid_lens=np.array([1, -2]))
        self.refuses(TypeError, ["`valid_lens`", "float64"], valid_lens=np.array([1.0, 2.0]))


if __name__ == "__main__":
    unittest.main()
