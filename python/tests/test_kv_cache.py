"""``KvCache``: a decoder loop's appends and attention give the bits of
``scaled_dot_product_attention`` over the same positions stored the same way,
in every dtype; ``is_causal`` aligns the new queries lower-right; refused
calls change nothing and name the argument."""

import unittest

import numpy as np

import simd_attention as sa
from test_sdpa import rand

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None


def stored(x, dtype):
    """``x`` as a cache of ``dtype`` stores it, as ``scaled_dot_product_attention`` takes it."""
    if dtype == "q8":
        return sa.quantize_q8(x)
    return x.astype({"float32": np.float32, "float16": np.float16, "bfloat16": getattr(ml_dtypes, "bfloat16", None)}[dtype])


DTYPES = ["float32", "float16", "q8"] + (["bfloat16"] if ml_dtypes is not None else [])


class DecoderLoop(unittest.TestCase):
    rng = np.random.default_rng(11)

    def test_steps_match_plain_sdpa_bit_for_bit(self):
        b, hq, hkv, cap, e, ev = 2, 4, 2, 40, 40, 24
        r = self.rng
        k, v = rand(r, b, hkv, cap, e), rand(r, b, hkv, cap, ev)
        for dtype in DTYPES:
            cache = sa.KvCache(b, hkv, cap, e, ev, dtype=dtype)
            self.assertEqual((cache.dtype, cache.capacity, len(cache)), (dtype, cap, 0))
            steps = [5, 1, 1, 3, 1]  # a prefill, then decoding with a few speculative runs
            for n in steps:
                at = len(cache)
                cache.append(k[:, :, at : at + n], v[:, :, at : at + n])
                self.assertEqual(len(cache), at + n)
                q = rand(r, b, hq, n, e)
                full = at + n
                sk, sv = stored(k[:, :, :full], dtype), stored(v[:, :, :full], dtype)
                # Lower-right causal: query i sees positions 0..=at + i.
                sees = np.arange(full)[None, :] <= at + np.arange(n)[:, None]
                got = cache.attend(q, is_causal=True, enable_gqa=True)
                want = sa.scaled_dot_product_attention(q, sk, sv, attn_mask=sees, enable_gqa=True)
                np.testing.assert_array_equal(got, want, f"{dtype} step at {at}")
                pad = r.random((b, 1, 1, full)) < 0.8
                got = cache.attend(q, attn_mask=pad, scale=0.2, enable_gqa=True)
                want = sa.scaled_dot_product_attention(q, sk, sv, attn_mask=pad, scale=0.2, enable_gqa=True)
                np.testing.assert_array_equal(got, want, f"{dtype} padding mask at {at}")
            cache.clear()
            self.assertEqual(len(cache), 0)

    def test_queries_in_every_float_type(self):
        r = self.rng
        cache = sa.KvCache(1, 2, 8, 16, dtype=np.float16)
        k, v = rand(r, 1, 2, 8, 16), rand(r, 1, 2, 8, 16)
        cache.append(k, v)
        q = rand(r, 1, 2, 1, 16)
        types = [np.float32, np.float16] + ([ml_dtypes.bfloat16] if ml_dtypes is not None else [])
        for t in types:
            want = sa.scaled_dot_product_attention(q.astype(t), k.astype(np.float16), v.astype(np.float16))
            np.testing.assert_array_equal(cache.attend(q.astype(t)), want, str(t))

    def test_size_and_repr(self):
        self.assertEqual(sa.KvCache(2, 3, 10, 64, dtype="float32").nbytes, 2 * 2 * 3 * 10 * 64 * 4)
        self.assertEqual(sa.KvCache(2, 3, 10, 64, 40, dtype="q8").nbytes, 2 * 3 * 10 * (64 + 2 * 4 + 40 + 2 * 4))
        self.assertIn("dtype=\"bfloat16\"", repr(sa.KvCache(1, 1, 1, 1, dtype="bfloat16")))


class Refusals(unittest.TestCase):
    def refuses(self, error, words, call):
        with self.assertRaises(error) as caught:
            call()
        for w in words:
            self.assertIn(w, str(caught.exception))

    def test_bad_calls_name_the_argument_and_change_nothing(self):
        r = np.random.default_rng(2)
        cache = sa.KvCache(1, 2, 4, 8, 6)
        k, v = rand(r, 1, 2, 3, 8), rand(r, 1, 2, 3, 6)
        cache.append(k, v)
        q = rand(r, 1, 2, 1, 8)
        before = cache.attend(q)
        self.refuses(ValueError, ["`key`", "at most 1", "3"], lambda: cache.append(k, v))
        self.refuses(ValueError, ["`key`", "(1, 2, n, 8)", "(1, 2, 1, 7)"], lambda: cache.append(k[..., :1, :7], v[..., :1, :]))
        self.refuses(ValueError, ["`value`", "(1, 2, n, 6)"], lambda: cache.append(k[..., :1, :], k[..., :1, :]))
        self.refuses(ValueError, ["`value`", "1 positions", "2"], lambda: cache.append(k[..., :1, :], v[..., :2, :]))
        self.refuses(TypeError, ["`key`", "float32", "float16"], lambda: cache.append(k.astype(np.float16)[..., :1, :], v[..., :1, :]))
        self.assertEqual(len(cache), 3)
        np.testing.assert_array_equal(cache.attend(q), before)
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)"], lambda: cache.attend(q[0]))
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)"], lambda: cache.attend(np.zeros((2, 2, 1, 8), np.float32)))
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)", "(1, 2, 1, 7)"], lambda: cache.attend(q[..., :7]))
        self.refuses(ValueError, ["`enable_gqa`"], lambda: cache.attend(rand(r, 1, 4, 1, 8)))
        self.refuses(ValueError, ["`attn_mask`", "(1, 2, 1, 3)"], lambda: cache.attend(q, attn_mask=np.ones((1, 4), bool)))
        self.refuses(ValueError, ["`attn_mask`", "is_causal"], lambda: cache.attend(q, attn_mask=np.ones((1, 3), bool), is_causal=True))
        self.refuses(TypeError, ["`query`", "tuple"], lambda: cache.attend(sa.quantize_q8(q)))
        self.refuses(ValueError, ["`dtype`", "q8", "\"int8\""], lambda: sa.KvCache(1, 1, 1, 1, dtype="int8"))
        self.refuses(ValueError, ["`dtype`", "\"float64\""], lambda: sa.KvCache(1, 1, 1, 1, dtype=np.float64))
        self.refuses(TypeError, ["`dtype`", "q8", "object"], lambda: sa.KvCache(1, 1, 1, 1, dtype=object()))
        self.refuses(MemoryError, ["`key`"], lambda: sa.KvCache(1 << 20, 1 << 20, 1 << 20, 1 << 10))
        self.refuses(OverflowError, [], lambda: sa.KvCache(-1, 1, 1, 1))

    def test_an_empty_cache_attends_to_nothing(self):
        cache = sa.KvCache(1, 1, 4, 8)
        got = cache.attend(np.ones((1, 1, 2, 8), np.float32))
        np.testing.assert_array_equal(got, np.zeros((1, 1, 2, 8), np.float32))


if __name__ == "__main__":
    unittest.main()
