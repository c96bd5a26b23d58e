"""Keys and values stored in less than float32: ``ml_dtypes.bfloat16`` arrays
and q8 ``(values, scales)`` pairs through ``scaled_dot_product_attention``
(the golden cases, and a float64 reference over the values as stored), and
``quantize_q8``'s format."""

import unittest

import numpy as np

import simd_attention as sa
from golden import assert_close, load
from test_sdpa import rand, reference

try:
    import ml_dtypes
except ImportError:  # the bfloat16 tests say they were skipped
    ml_dtypes = None


def dequantize(values, scales):
    """q8 as the engine reads it: each value times its block's scale, in f32."""
    blocks = np.repeat(scales, 32, axis=-1)[..., : values.shape[-1]]
    return values.astype(np.float32) * blocks


class Q8(unittest.TestCase):
    rng = np.random.default_rng(3)

    def test_golden_cases(self):
        for name in ["sdpa-q8-decode", "sdpa-q8-odd-dims"]:
            t, meta = load(name)
            self.assertEqual(meta["block"], "32")
            gqa = t["query"].shape[1] != t["key"].shape[1]
            got = sa.scaled_dot_product_attention(
                t["query"], (t["key"], t["key_scale"]), (t["value"], t["value_scale"]), enable_gqa=gqa
            )
            assert_close(self, got, t["expected.output"], name)

    def test_quantize_q8_writes_the_format(self):
        x = rand(self.rng, 3, 70) * 5
        x[1, 32:64] = 0
        x[2, 5] = np.inf
        values, scales = sa.quantize_q8(x)
        self.assertEqual((values.dtype, values.shape, scales.dtype, scales.shape), (np.int8, (3, 70), np.float32, (3, 3)))
        for r in range(2):
            for b in range(3):
                block = x[r, 32 * b : 32 * b + 32]
                scale = np.float32(np.abs(block).max() / np.float32(127))
                self.assertEqual(scales[r, b], scale)
                if scale > 0:
                    want = np.clip(np.trunc(block / scale + np.copysign(0.5, block)), -127, 127)
                    np.testing.assert_array_equal(values[r, 32 * b : 32 * b + 32], want)
        self.assertEqual(scales[1, 1], 0)
        np.testing.assert_array_equal(values[1, 32:64], 0)
        self.assertTrue(np.isnan(scales[2, 0]))
        self.assertEqual(sa.quantize_q8(np.zeros((4, 0), np.float32))[1].shape, (4, 0))

    def test_against_reference(self):
        r = self.rng
        for (b, hq, hkv, l, s, e, ev) in [(2, 4, 2, 1, 300, 64, 64), (1, 3, 1, 5, 41, 40, 20), (2, 2, 2, 9, 9, 7, 33)]:
            q, k, v = rand(r, b, hq, l, e), rand(r, b, hkv, s, e), rand(r, b, hkv, s, ev)
            kq, vq = sa.quantize_q8(k), sa.quantize_q8(v)
            for causal in [False, True]:
                got = sa.scaled_dot_product_attention(q, kq, vq, is_causal=causal, enable_gqa=hq != hkv)
                want = reference(q, dequantize(*kq), dequantize(*vq), is_causal=causal)
                assert_close(self, got, want, f"q8 {q.shape} {k.shape} causal={causal}")

    def test_bad_pairs_name_the_argument(self):
        q, k = np.zeros((1, 1, 2, 40), np.float32), np.zeros((1, 1, 3, 40), np.float32)
        kq = sa.quantize_q8(k)
        cases = [
            (ValueError, ["`key[1]`", "(1, 1, 3, 2)", "(1, 1, 3, 1)"], (kq[0], kq[1][..., :1]), kq),
            (TypeError, ["`key[0]`", "int8", "float32"], (k, kq[1]), kq),
            (TypeError, ["`value[1]`", "float32", "float64"], kq, (kq[0], kq[1].astype(np.float64))),
            (TypeError, ["`key`", "(values, scales)", "3"], kq + (1,), kq),
            (TypeError, ["`value`", "storage q8", "got float32"], kq, k),
        ]
        for error, words, key, value in cases:
            with self.assertRaises(error) as caught:
                sa.scaled_dot_product_attention(q, key, value)
            for w in words:
                self.assertIn(w, str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            sa.scaled_dot_product_attention(kq, k, k)
        self.assertIn("`query`", str(caught.exception))


@unittest.skipIf(ml_dtypes is None, "ml_dtypes is not installed: NumPy has no bfloat16 of its own")
class Bfloat16(unittest.TestCase):
    rng = np.random.default_rng(5)

    def test_golden_cases(self):
        for name in ["sdpa-bf16-decode", "sdpa-bf16-all-bf16"]:
            t, meta = load(name)
            bf = {n: (a.view(ml_dtypes.bfloat16) if a.dtype == np.uint16 else a) for n, a in t.items()}
            gqa = t["query"].shape[1] != t["key"].shape[1]
            got = sa.scaled_dot_product_attention(
                bf["query"], bf["key"], bf["value"], is_causal=meta.get("is_causal") == "true", enable_gqa=gqa
            )
            assert_close(self, got, t["expected.output"], name)

    def test_against_reference(self):
        r = self.rng
        bf = ml_dtypes.bfloat16
        q, k, v = rand(r, 2, 4, 3, 24), rand(r, 2, 2, 50, 24).astype(bf), rand(r, 2, 2, 50, 17).astype(bf)
        for query in [q, q.astype(bf)]:
            got = sa.scaled_dot_product_attention(query, k, v, is_causal=True, enable_gqa=True)
            assert_close(self, got, reference(query, k, v, is_causal=True), f"query {query.dtype}")
        with self.assertRaises(TypeError) as caught:
            sa.scaled_dot_product_attention(q, k, v.astype(np.float16), enable_gqa=True)
        self.assertIn("storage bfloat16, got float16", str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            sa.scaled_dot_product_attention(q.astype(ml_dtypes.float8_e4m3fn), k, v, enable_gqa=True)
        self.assertIn("float8_e4m3fn", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
