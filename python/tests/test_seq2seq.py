"""``Seq2Seq``: the trained d2l Bahdanau model (tests/data/reverse-bahdanau)
against PyTorch's greedy decode (tests/data/seq2seq-reverse-decode), sources
and words, translation, and bad arguments."""

import os
import pathlib
import threading
import unittest

import numpy as np

import simd_attention as sa
from golden import DATA, load
from refusals import Refusals

MODEL = DATA / "reverse-bahdanau.safetensors"


class Golden(unittest.TestCase):
    def test_greedy_decode_gives_pytorchs_tokens_and_weights(self):
        model = sa.Seq2Seq(MODEL)
        t, meta = load("seq2seq-reverse-decode")
        steps, bos = int(meta["num_steps"]), int(meta["bos"])
        tokens, weights = model.greedy_decode(t["src"], t["src_valid_lens"], num_steps=steps, bos=bos)
        self.assertEqual((tokens.dtype, tokens.shape), (np.int64, t["expected.tokens"].shape))
        self.assertEqual((weights.dtype, weights.shape), (np.float32, t["expected.attention_weights"].shape))
        for b, want in enumerate(t["expected.tokens"]):
            # Tokens up to and including the first <eos> exactly, and the
            # weights of those steps within the golden tolerance.
            end = next((i + 1 for i, tok in enumerate(want) if tok == model.eos), steps)
            np.testing.assert_array_equal(tokens[b, :end], want[:end], f"sequence {b}")
            np.testing.assert_allclose(weights[b, :end], t["expected.attention_weights"][b, :end], atol=5e-5)


class Decoding(unittest.TestCase):
    def setUp(self):
        self.model = sa.Seq2Seq(str(MODEL))

    def test_the_model_describes_itself(self):
        m = self.model
        self.assertEqual(m.vocab[m.bos], "<bos>")
        self.assertEqual(m.vocab[m.eos], "<eos>")
        self.assertEqual(m.vocab[m.pad], "<pad>")
        self.assertIn("num_steps=10", repr(m))
        self.assertEqual(sa.Seq2Seq(pathlib.Path(MODEL)).num_steps, m.num_steps)  # os.PathLike

    def test_sources_are_ids_then_eos_then_padding(self):
        m = self.model
        ids, valid_len = m.source(["7", "0"])
        want = [m.vocab.index("7"), m.vocab.index("0"), m.eos] + [m.pad] * (m.num_steps - 3)
        self.assertEqual((ids.dtype, ids.tolist(), valid_len), (np.int64, want, 3))
        self.assertEqual(m.words(ids), ["7", "0"])
        self.assertEqual(m.words(np.array([m.vocab.index("4")], np.uint8)), ["4"])

    def test_translate_reverses_digits(self):
        got = self.model.translate([list("314159"), list("27"), list("8051")])
        self.assertEqual(got, [list("951413"), list("72"), list("1508")])
        self.assertEqual(self.model.translate([]), [])

    def test_stop_at_repeats_the_id_with_zero_weights(self):
        m = self.model
        ids, n = m.source(list("4096"))
        tokens, weights = m.greedy_decode(ids[None], [n], stop_at=m.eos)
        end = tokens[0].tolist().index(m.eos)
        self.assertEqual(m.words(tokens[0]), list("6904"))
        self.assertTrue(np.all(tokens[0, end:] == m.eos))
        np.testing.assert_array_equal(weights[0, end + 1 :], 0)
        np.testing.assert_allclose(weights[0, : end + 1].sum(axis=-1), 1, atol=1e-5)
        self.assertTrue(np.all(weights[0, : end + 1, n:] == 0))  # past the valid length

    def test_threads_decode_at_once(self):
        m = self.model
        sources = [list(str(d) * (3 + d % 5)) for d in range(8)]
        want = m.translate(sources)
        got = [None] * 8

        def run(i):
            got[i] = m.translate(sources)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(g == want for g in got))


class BadArguments(Refusals, unittest.TestCase):
    def setUp(self):
        self.model = sa.Seq2Seq(MODEL)

    def test_each_refusal_names_its_argument(self):
        m, src, lens = self.model, np.zeros((2, 10), np.int64), np.array([3, 4])
        vocab = len(m.vocab)
        self.refuses(ValueError, ["`tokens`", "unknown token `x`"], lambda: m.source(["1", "x"]))
        self.refuses(TypeError, ["`tokens`", "a sequence of str", "'12'"], lambda: m.source("12"))
        self.refuses(TypeError, ["`tokens`", "a sequence of str"], lambda: m.source([1, 2]))
        self.refuses(ValueError, ["`sources[1]`", "at most 9 tokens, got 12"], lambda: m.translate([["1"], list("123456789012")]))
        self.refuses(TypeError, ["`sources[0]`", "'ab'"], lambda: m.translate(["ab"]))
        self.refuses(TypeError, ["`sources`", "3"], lambda: m.translate(3))
        self.refuses(TypeError, ["`sources`", "'ab'"], lambda: m.translate("ab"))
        self.refuses(ValueError, ["`src`", "2 dimensions", "(10,)"], lambda: m.greedy_decode(src[0], lens))
        self.refuses(TypeError, ["`src`", "integer", "float32"], lambda: m.greedy_decode(src.astype(np.float32), lens))
        self.refuses(ValueError, ["`src`", "at least 0", "-1"], lambda: m.greedy_decode(-src - 1, lens))
        self.refuses(ValueError, ["`src`", f"below {vocab}", f"{vocab + 1} at index 3"], lambda: m.greedy_decode(np.where(np.arange(20).reshape(2, 10) == 3, vocab + 1, 0), lens))
        self.refuses(ValueError, ["`src_valid_lens`", "(2,)", "(3,)"], lambda: m.greedy_decode(src, [1, 2, 3]))
        self.refuses(ValueError, ["`bos`", f"below {vocab}", str(vocab)], lambda: m.greedy_decode(src, lens, bos=vocab))
        self.refuses(ValueError, ["`num_steps`", "at least 0", "-1"], lambda: m.greedy_decode(src, lens, num_steps=-1))
        self.refuses(MemoryError, ["`tokens`"], lambda: m.greedy_decode(src, lens, num_steps=1 << 62))
        self.refuses(ValueError, ["`ids`", "1 dimension", "(2, 10)"], lambda: m.words(src))
        self.refuses(OSError, ["no-such-model"], lambda: sa.Seq2Seq("no-such-model.safetensors"))
        self.refuses(ValueError, ["safetensors"], lambda: sa.Seq2Seq(os.devnull))
        self.refuses(TypeError, ["`path`", "os.PathLike", "3"], lambda: sa.Seq2Seq(3))

    def test_an_empty_batch_returns_at_once(self):
        tokens, weights = self.model.greedy_decode(np.zeros((0, 10), np.int64), [], num_steps=1 << 40)
        self.assertEqual((tokens.shape, weights.shape), ((0, 1 << 40), (0, 1 << 40, 10)))


if __name__ == "__main__":
    unittest.main()
