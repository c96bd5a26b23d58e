"""``scaled_dot_product_attention`` against the golden cases, a float64 NumPy
reference of PyTorch's semantics, and bad arguments."""

import threading
import unittest

import numpy as np

import simd_attention as sa
from golden import assert_close, load
from refusals import Refusals


def reference(q, k, v, mask=None, is_causal=False, scale=None):
    """PyTorch's SDPA in float64 over 4-D arrays; rows that see nothing give 0."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    keep = np.ones(s.shape, dtype=bool)
    if is_causal:
        keep &= np.tril(np.ones(s.shape[-2:], dtype=bool))
    if mask is not None and mask.dtype == bool:
        keep &= np.broadcast_to(mask, s.shape)
    elif mask is not None:
        s = s + np.broadcast_to(mask, s.shape)
    s = np.where(keep, s, -np.inf)
    top = np.max(s, axis=-1, keepdims=True)
    e = np.where(keep, np.exp(s - np.where(np.isfinite(top), top, 0)), 0)
    total = e.sum(axis=-1, keepdims=True)
    return (e / np.where(total > 0, total, 1)) @ v


def on_threads(call, threads=4, calls=1):
    """What ``call()`` returns on each of ``threads`` Python threads at once, ``calls`` times each."""
    results = [[] for _ in range(threads)]

    def run(i):
        results[i] = [call() for _ in range(calls)]

    running = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return [r for each in results for r in each]


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


class Golden(unittest.TestCase):
    def test_golden_cases(self):
        for name in ["sdpa-plain", "sdpa-causal", "sdpa-bool-mask", "sdpa-gqa-scale", "sdpa-f16-bool"]:
            t, meta = load(name)
            mask = t.get("attn_mask")
            if mask is not None and mask.dtype == np.uint8:
                mask = mask.astype(bool)
            scale = float(meta["scale"]) if "scale" in meta else None
            gqa = t["query"].shape[1] != t["key"].shape[1]
            got = sa.scaled_dot_product_attention(
                t["query"], t["key"], t["value"], attn_mask=mask,
                is_causal=meta.get("is_causal") == "true", scale=scale, enable_gqa=gqa,
            )
            self.assertEqual(got.dtype, np.float32)
            assert_close(self, got, t["expected.output"], name)


class AgainstReference(unittest.TestCase):
    rng = np.random.default_rng(7)

    def check(self, q, k, v, **kw):
        got = sa.scaled_dot_product_attention(q, k, v, **kw)
        kw.pop("enable_gqa", None)
        want = reference(q.reshape((1,) * (4 - q.ndim) + q.shape), k.reshape((1,) * (4 - k.ndim) + k.shape),
                         v.reshape((1,) * (4 - v.ndim) + v.shape), mask=kw.get("attn_mask"),
                         is_causal=kw.get("is_causal", False), scale=kw.get("scale")).reshape(got.shape)
        self.assertEqual(got.shape, q.shape[:-1] + v.shape[-1:])
        assert_close(self, got, want, repr({k: getattr(v, "shape", v) for k, v in kw.items()}))
        return got

    def test_shapes_masks_and_types(self):
        r = self.rng
        for (b, hq, hkv, l, s, e, ev) in [(2, 4, 2, 7, 33, 16, 9), (1, 3, 3, 1, 300, 64, 64), (3, 2, 1, 70, 20, 5, 3)]:
            q, k, v = rand(r, b, hq, l, e), rand(r, b, hkv, s, e), rand(r, b, hkv, s, ev)
            gqa = hq != hkv
            self.check(q, k, v, enable_gqa=gqa)
            self.check(q, k, v, is_causal=True, enable_gqa=gqa)
            self.check(q, k, v, scale=0.3, enable_gqa=gqa)
            pad = r.random((b, 1, 1, s)) < 0.7
            self.check(q, k, v, attn_mask=pad, enable_gqa=gqa)
            self.check(q, k, v, attn_mask=r.random((l, s)) < 0.5, enable_gqa=gqa)
            self.check(q, k, v, attn_mask=rand(r, b, hq, l, s), enable_gqa=gqa)
            self.check(q, k.astype(np.float16), v.astype(np.float16), enable_gqa=gqa)
            self.check(q.astype(np.float16), k.astype(np.float16), v.astype(np.float16), is_causal=True, enable_gqa=gqa)

    def test_fewer_leading_dimensions(self):
        r = self.rng
        self.check(rand(r, 5, 8), rand(r, 9, 8), rand(r, 9, 3))
        self.check(rand(r, 2, 5, 8), rand(r, 2, 9, 8), rand(r, 2, 9, 3), is_causal=True)

    def test_strided_views_and_lists(self):
        r = self.rng
        q = rand(r, 2, 3, 8, 6).transpose(0, 1, 3, 2)  # (2, 3, 6, 8), not contiguous
        k, v = rand(r, 2, 3, 10, 8), rand(r, 2, 3, 10, 4)[..., ::-1]
        self.assertFalse(q.flags.c_contiguous)
        got = self.check(q, k, v)
        np.testing.assert_array_equal(got, sa.scaled_dot_product_attention(np.ascontiguousarray(q), k, v.copy()))

        class ArrayLike:  # as a PyTorch CPU tensor offers itself
            def __array__(self, dtype=None, copy=None):
                return k

        np.testing.assert_array_equal(got, sa.scaled_dot_product_attention(q, ArrayLike(), v))

    def test_every_layout_reads_as_its_values(self):
        r = self.rng
        q, k, v = rand(r, 2, 3, 6, 8), rand(r, 2, 3, 10, 8), rand(r, 2, 3, 10, 4)
        want = sa.scaled_dot_product_attention(q, k, v)
        fortran = np.asfortranarray(q)
        self.assertTrue(fortran.flags.f_contiguous and not fortran.flags.c_contiguous)
        np.testing.assert_array_equal(sa.scaled_dot_product_attention(fortran, k, v), want)
        raw = np.zeros(k.nbytes + 1, np.uint8)
        misaligned = raw[1:].view(np.float32).reshape(k.shape)
        misaligned[...] = k
        self.assertFalse(misaligned.flags.aligned)
        np.testing.assert_array_equal(sa.scaled_dot_product_attention(q, misaligned, v), want)
        row = rand(r, 1, 1, 1, 4)
        broadcast = np.broadcast_to(row, v.shape)
        np.testing.assert_array_equal(
            sa.scaled_dot_product_attention(q, k, broadcast), sa.scaled_dot_product_attention(q, k, np.ascontiguousarray(broadcast))
        )
        with self.assertRaises(MemoryError):
            sa.scaled_dot_product_attention(q[0, 0], k[0, 0], np.broadcast_to(np.float32(1), (10, 1 << 40)))

    def test_empty_rows_and_keys_take_any_broadcastable_mask(self):
        q, k, v = np.ones((1, 2, 0, 4), np.float32), np.ones((1, 2, 3, 4), np.float32), np.ones((1, 2, 3, 5), np.float32)
        self.assertEqual(sa.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((1, 3), bool)).shape, (1, 2, 0, 5))
        q = np.ones((1, 2, 2, 4), np.float32)
        got = sa.scaled_dot_product_attention(q, k[:, :, :0], v[:, :, :0], attn_mask=np.ones((2, 1), bool))
        np.testing.assert_array_equal(got, np.zeros((1, 2, 2, 5), np.float32))

    def test_threads_give_the_same_bits(self):
        r = self.rng
        q, k, v = rand(r, 2, 4, 64, 32), rand(r, 2, 4, 200, 32), rand(r, 2, 4, 200, 32)
        want = sa.scaled_dot_product_attention(q, k, v, is_causal=True)
        for got in on_threads(lambda: sa.scaled_dot_product_attention(q, k, v, is_causal=True)):
            np.testing.assert_array_equal(got, want)


class BadArguments(Refusals, unittest.TestCase):
    q, k, v = np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 2, 5, 4), np.float32), np.zeros((1, 2, 5, 6), np.float32)

    def refuses(self, error, words, **kw):
        args = {"query": self.q, "key": self.k, "value": self.v, **kw}
        super().refuses(error, words, lambda: sa.scaled_dot_product_attention(**args))

    def test_messages_name_the_argument(self):
        self.refuses(TypeError, ["`query`", "float64"], query=self.q.astype(np.float64))
        self.refuses(TypeError, ["`value`", "int32"], value=self.v.astype(np.int32))
        self.refuses(ValueError, ["`key`", "4"], key=np.zeros((1, 2, 5, 3), np.float32))
        self.refuses(ValueError, ["`dropout_p`", "0.1"], dropout_p=0.1)
        self.refuses(ValueError, ["`enable_gqa`"], key=self.k[:, :1], value=self.v[:, :1])
        self.refuses(ValueError, ["`attn_mask`", "(1, 2, 3, 5)", "(3, 4)"], attn_mask=np.ones((3, 4), bool))
        self.refuses(ValueError, ["`attn_mask`", "is_causal"], attn_mask=np.ones((3, 5), bool), is_causal=True)
        self.refuses(TypeError, ["`attn_mask`", "int64"], attn_mask=np.ones((3, 5), np.int64))
        self.refuses(ValueError, ["`query`", "dimensions"], query=np.zeros(4, np.float32))
        self.refuses(ValueError, ["`key, value`"], key=self.k[0])
        self.refuses(TypeError, ["`value`", "storage float16", "got float32"], key=self.k.astype(np.float16))
        self.refuses(ValueError, ["`key`", "(1, 2, 5, 4)", "(2, 2, 5, 4)"], key=np.zeros((2, 2, 5, 4), np.float32))
        self.refuses(ValueError, ["`key`", "(1, 2, 5, 4)", "(1, 2, 5, 8)"], key=np.zeros((1, 2, 5, 8), np.float32))
        self.refuses(ValueError, ["`value`", "(1, 2, 5, 6)", "(1, 1, 10, 6)"], value=np.zeros((1, 1, 10, 6), np.float32))
        self.refuses(ValueError, ["`value`", "(5, 6)", "(4, 6)"], query=self.q[0, 0], key=self.k[0, 0], value=self.v[0, 0, :4])
        three = np.zeros((1, 3, 3, 4), np.float32)
        self.refuses(ValueError, ["`key`", "dividing query's 3", "2"], query=three, enable_gqa=True)

    def test_empty_and_oversized(self):
        z = np.zeros((0, 2, 3, 4), np.float32)
        got = sa.scaled_dot_product_attention(z, z[:, :, :2], np.zeros((0, 2, 2, 5), np.float32), attn_mask=np.ones((1, 1, 1, 2), bool))
        self.assertEqual(got.shape, (0, 2, 3, 5))
        long_query, wide_value = np.zeros((1 << 24, 1), np.float32), np.zeros((1, 1 << 24), np.float32)
        with self.assertRaises(MemoryError) as caught:
            sa.scaled_dot_product_attention(long_query, np.zeros((1, 1), np.float32), wide_value)
        self.assertIn("`output`", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
