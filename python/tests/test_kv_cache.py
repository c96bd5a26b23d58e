"""``KvCache``: a decoder loop's appends and attention give the bits of
``scaled_dot_product_attention`` over the same positions stored the same way,
in every dtype; ``is_causal`` aligns the new queries lower-right; refused
calls change nothing and name the argument."""

import unittest

import numpy as np

import simd_attention as sa
from refusals import Refusals
from test_sdpa import on_threads, rand

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None


def stored(x, dtype):
    """``x`` as a cache of ``dtype`` stores it, as ``scaled_dot_product_attention`` takes it."""
    if dtype == "q8":
        return sa.quantize_q8(x)
    return x.astype({"float32": np.float32, "float16": np.float16, "bfloat16": getattr(ml_dtypes, "bfloat16", None)}[dtype])


DTYPES = ["float32", "float16", "q8"]


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

    @unittest.skipIf(ml_dtypes is None, "ml_dtypes is not installed: no bfloat16 to compare a bfloat16 cache with")
    def test_bfloat16_steps_match_plain_sdpa_bit_for_bit(self):
        r = self.rng
        k, v = rand(r, 1, 2, 12, 16), rand(r, 1, 2, 12, 8)
        cache = sa.KvCache(1, 2, 12, 16, 8, dtype="bfloat16")
        for n in [4, 1, 2]:
            at = len(cache)
            cache.append(k[:, :, at : at + n], v[:, :, at : at + n])
            q = rand(r, 1, 2, n, 16)
            sees = np.arange(at + n)[None, :] <= at + np.arange(n)[:, None]
            want = sa.scaled_dot_product_attention(q, stored(k[:, :, : at + n], "bfloat16"), stored(v[:, :, : at + n], "bfloat16"), attn_mask=sees)
            np.testing.assert_array_equal(cache.attend(q, is_causal=True), want)

    def test_long_caches_take_the_parallel_paths_with_the_same_bits(self):
        # Large enough for par's split of the keys (decode) and of the query rows (prefill).
        r = self.rng
        cap, length = 4096, 3000
        k, v = rand(r, 1, 2, length, 64), rand(r, 1, 2, length, 64)
        for dtype in ["float32", "q8"]:
            cache = sa.KvCache(1, 2, cap, 64, dtype=dtype)
            cache.append(k, v)
            sk, sv = stored(k, dtype), stored(v, dtype)
            for n in [1, 100]:
                q = rand(r, 1, 4, n, 64)
                sees = np.arange(length)[None, :] <= length - n + np.arange(n)[:, None]
                want = sa.scaled_dot_product_attention(q, sk, sv, attn_mask=sees, enable_gqa=True)
                np.testing.assert_array_equal(cache.attend(q, is_causal=True, enable_gqa=True), want, f"{dtype} L={n}")

    def test_more_queries_than_positions_see_nothing_first(self):
        r = self.rng
        cache = sa.KvCache(1, 1, 8, 4)
        cache.append(rand(r, 1, 1, 2, 4), rand(r, 1, 1, 2, 4))
        got = cache.attend(rand(r, 1, 1, 3, 4), is_causal=True)
        np.testing.assert_array_equal(got[0, 0, 0], np.zeros(4, np.float32))  # query 0 sees positions 0..=-1
        self.assertTrue(np.all(got[0, 0, 1:] != 0))

    def test_threads_attend_at_once(self):
        r = self.rng
        cache = sa.KvCache(1, 2, 2048, 64, dtype="float16")
        cache.append(rand(r, 1, 2, 2000, 64), rand(r, 1, 2, 2000, 64))
        q = rand(r, 1, 2, 1, 64)
        want = cache.attend(q)
        for got in on_threads(lambda: cache.attend(q), calls=20):
            np.testing.assert_array_equal(got, want)

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


class BadCalls(Refusals, unittest.TestCase):
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
        for dtype in ["q8", "bfloat16"]:
            other = sa.KvCache(1, 2, 4, 8, 6, dtype=dtype)
            other.append(k, v)
            kept = other.attend(q)
            self.refuses(ValueError, ["`key`", "at most 1"], lambda: other.append(k, v))
            self.refuses(ValueError, ["`key`"], lambda: other.append(k[..., :1, :7], v[..., :1, :]))
            np.testing.assert_array_equal(other.attend(q), kept)
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)", "(8,)"], lambda: cache.attend(q[0, 0, 0]))
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)"], lambda: cache.attend(q[None]))
        self.assertEqual(sa.KvCache(1, 1, 1, 1, dtype="f4").dtype, "float32")
        self.assertEqual(sa.KvCache(1, 1, 1, 1, dtype="half").dtype, "float16")
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)"], lambda: cache.attend(q[0]))
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)"], lambda: cache.attend(np.zeros((2, 2, 1, 8), np.float32)))
        self.refuses(ValueError, ["`query`", "(1, q_heads, L, 8)", "(1, 2, 1, 7)"], lambda: cache.attend(q[..., :7]))
        self.refuses(ValueError, ["`enable_gqa`"], lambda: cache.attend(rand(r, 1, 4, 1, 8)))
        self.refuses(ValueError, ["`attn_mask`", "(1, 2, 1, 3)"], lambda: cache.attend(q, attn_mask=np.ones((1, 4), bool)))
        self.refuses(ValueError, ["`attn_mask`", "is_causal"], lambda: cache.attend(q, attn_mask=np.ones((1, 3), bool), is_causal=True))
        self.refuses(TypeError, ["`query`", "tuple"], lambda: cache.attend(sa.quantize_q8(q)))
        self.refuses(ValueError, ["`dtype`", "q8", "int8"], lambda: sa.KvCache(1, 1, 1, 1, dtype="int8"))
        self.refuses(ValueError, ["`dtype`", "float64"], lambda: sa.KvCache(1, 1, 1, 1, dtype=np.float64))
        self.refuses(TypeError, ["`dtype`", "q8", "object"], lambda: sa.KvCache(1, 1, 1, 1, dtype=object()))
        self.refuses(MemoryError, ["`key`"], lambda: sa.KvCache(1 << 20, 1 << 20, 1 << 20, 1 << 10))
        self.refuses(ValueError, ["`batch`", "at least 0", "-1"], lambda: sa.KvCache(-1, 1, 1, 1))
        self.refuses(ValueError, ["`value_dim`", "-2"], lambda: sa.KvCache(1, 1, 1, 1, -2))
        self.refuses(ValueError, ["`capacity`", "at most", str(10**30)], lambda: sa.KvCache(1, 1, 10**30, 1))
        self.refuses(TypeError, ["`head_dim`", "an int", "1.5"], lambda: sa.KvCache(1, 1, 1, 1.5))
        self.assertEqual(sa.KvCache(np.int64(1), 1, np.uint8(3), 2).capacity, 3)  # NumPy integers are sizes

    def test_an_empty_cache_attends_to_nothing(self):
        cache = sa.KvCache(1, 1, 4, 8)
        got = cache.attend(np.ones((1, 1, 2, 8), np.float32))
        np.testing.assert_array_equal(got, np.zeros((1, 1, 2, 8), np.float32))
        got = cache.attend(np.ones((1, 1, 2, 8), np.float32), attn_mask=np.ones((1, 1), bool))
        np.testing.assert_array_equal(got, np.zeros((1, 1, 2, 8), np.float32))


if __name__ == "__main__":
    unittest.main()
