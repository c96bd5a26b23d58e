"""Attention on CPUs: SDPA with PyTorch's argument names and semantics, a
KV cache for decoder loops, d2l's attention modules (additive, dot-product,
bilinear, multi-head, Nadaraya-Watson) with d2l's, over NumPy arrays, and
d2l's trained Bahdanau seq2seq decoded greedily.

Arrays are borrowed in place when C-contiguous (other layouts are copied
once), the GIL is released while the engine computes on every core
(``RAYON_NUM_THREADS`` sets how many), and results are bit-identical at any
thread count. Bad shapes or types raise ``ValueError`` or ``TypeError`` whose
message names the argument, the expected value and the actual one; an output
or copy larger than memory raises ``MemoryError``.
"""

import os
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

# float32, float16, or ml_dtypes.bfloat16 (NumPy has no bfloat16 of its own).
Floats = Union[npt.NDArray[np.float32], npt.NDArray[np.float16], npt.NDArray[Any]]
# q8: int8 values (..., S, E) and float32 scales (..., S, ceil(E / 32)).
Q8 = Tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]
Mask = Union[npt.NDArray[np.bool_], npt.NDArray[np.float32]]

def backend() -> str:
    """The SIMD backend in use, e.g. ``"avx512"``, ``"avx2"`` or ``"portable"``."""

def scaled_dot_product_attention(
    query: Floats,
    key: Union[Floats, Q8],
    value: Union[Floats, Q8],
    attn_mask: Optional[Mask] = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> npt.NDArray[np.float32]:
    """``torch.nn.functional.scaled_dot_product_attention`` on the CPU.

    query ``(B, Hq, L, E)``, key ``(B, Hkv, S, E)``, value ``(B, Hkv, S, Ev)``
    -> ``(B, Hq, L, Ev)`` float32. The leading ``B`` or ``B, H`` may be left
    out of all three. float32, float16 and bfloat16 are read as stored and
    computed in float32; ``key`` and ``value`` may instead be q8
    ``(values, scales)`` pairs (see ``quantize_q8``), of one storage type
    between them. ``attn_mask``: bool (True takes part) or float32 (added to the
    scaled scores), broadcastable to ``(B, Hq, L, S)``; a row that sees no key
    gives zeros. ``is_causal``: query ``i`` sees keys ``0..=i`` (top-left, as
    PyTorch's flag). ``scale`` defaults to ``1/sqrt(E)``. ``Hq != Hkv`` (a
    multiple) needs ``enable_gqa=True``. ``dropout_p`` must be 0.
    """

def additive_attention(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    w_q: npt.NDArray[np.float32],
    w_k: npt.NDArray[np.float32],
    w_v: npt.NDArray[np.float32],
    valid_lens: Optional[npt.NDArray[np.integer]] = None,
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """d2l's ``AdditiveAttention``: ``w_v . tanh(W_q q + W_k k)``, masked
    softmax over the keys, applied to the values.

    queries ``(B, Q, qd)``, keys ``(B, K, kd)``, values ``(B, K, vd)``, and the
    ``state_dict`` weights ``W_q.weight (H, qd)``, ``W_k.weight (H, kd)``,
    ``w_v.weight (1, H)`` (or ``(H,)``), all float32. ``valid_lens``:
    integers ``(B,)`` or ``(B, Q)``; a length of 0 weighs every key equally.
    Returns ``output (B, Q, vd)`` and ``attention_weights (B, Q, K)``.
    """

Lens = Optional[npt.ArrayLike]  # integers (B,) or (B, Q)
Attended = Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]

def dot_product_attention(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    valid_lens: Lens = None,
) -> Attended:
    """d2l's ``DotProductAttention``: ``softmax(Q K^T / sqrt(d))`` masked by
    ``valid_lens``, applied to the values. queries ``(B, Q, d)``, keys ``(B,
    K, d)``, values ``(B, K, vd)`` float32. Returns ``output (B, Q, vd)`` and
    ``attention_weights (B, Q, K)``.
    """

def bilinear_attention(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    w_a: npt.NDArray[np.float32],
    valid_lens: Lens = None,
) -> Attended:
    """Bilinear (Luong's "general") attention: scores ``q^T W_a k`` with
    ``w_a (qd, kd)``, unscaled, then as ``dot_product_attention``."""

def multi_head_attention(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    num_heads: int,
    w_q: npt.NDArray[np.float32],
    w_k: npt.NDArray[np.float32],
    w_v: npt.NDArray[np.float32],
    w_o: npt.NDArray[np.float32],
    valid_lens: Lens = None,
    b_q: Optional[npt.NDArray[np.float32]] = None,
    b_k: Optional[npt.NDArray[np.float32]] = None,
    b_v: Optional[npt.NDArray[np.float32]] = None,
    b_o: Optional[npt.NDArray[np.float32]] = None,
) -> Attended:
    """d2l's ``MultiHeadAttention`` from its ``state_dict``: ``W_q.weight``,
    ``W_k.weight``, ``W_v.weight`` ``(num_hiddens, in)`` and ``W_o.weight``
    ``(num_hiddens, num_hiddens)``, with the biases where the module has
    them. Returns ``output (B, Q, num_hiddens)`` and ``attention_weights
    (B * num_heads, Q, K)``, entry ``b * num_heads + h``.
    """

def nadaraya_watson(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    w: float,
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """d2l's ``NWKernelRegression``: ``attention_weights[i, j] =
    softmax_j(-((queries[i] - keys[i, j]) * w)**2 / 2)``, ``output[i] =
    sum_j attention_weights[i, j] * values[i, j]``. queries ``(n,)``, keys
    and values ``(n, m)`` float32. Returns ``output (n,)`` and
    ``attention_weights (n, m)``.
    """

def quantize_q8(x: npt.NDArray[np.float32]) -> Q8:
    """float32 ``(..., n)`` to q8 ``(int8 (..., n), float32 (..., ceil(n / 32)))``:
    per block of 32 values of a row, ``scale = max|x| / 127`` and
    ``q = round(x / scale)`` (half away from zero); a block of zeros has scale
    0, one holding inf or NaN scale NaN. A value reads back as ``q * scale``.
    """

class KvCache:
    """Keys and values of the positions decoded so far, stored as ``dtype``:
    ``"float32"``, ``"bfloat16"``, ``"float16"`` (rounded to nearest even on
    append) or ``"q8"`` (quantized as ``quantize_q8`` does). K is
    ``(batch, kv_heads, capacity, head_dim)``, V ``(..., value_dim)``; the
    memory is allocated once, here. Any number of threads may ``attend`` at
    once; an ``append`` while another thread is inside a call on the cache
    raises ``RuntimeError`` and changes nothing.
    """

    def __init__(
        self,
        batch: int,
        kv_heads: int,
        capacity: int,
        head_dim: int,
        value_dim: Optional[int] = None,
        dtype: Union[str, Any, None] = None,
    ) -> None: ...
    def __len__(self) -> int:
        """Positions filled so far."""
    @property
    def capacity(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    @property
    def nbytes(self) -> int:
        """Bytes K and V take, scales included, filled or not."""
    def clear(self) -> None:
        """Forgets every position; the memory stays."""
    def append(self, key: npt.NDArray[np.float32], value: npt.NDArray[np.float32]) -> None:
        """Appends ``n`` positions: key ``(batch, kv_heads, n, head_dim)`` and
        value ``(batch, kv_heads, n, value_dim)``, float32, converted to the
        cache's dtype. Past the capacity or with wrong shapes it raises
        ``ValueError`` and changes nothing."""
    def attend(
        self,
        query: Floats,
        attn_mask: Optional[Mask] = None,
        is_causal: bool = False,
        scale: Optional[float] = None,
        enable_gqa: bool = False,
    ) -> npt.NDArray[np.float32]:
        """SDPA of ``query (batch, q_heads, L, head_dim)`` over every filled
        position -> ``(batch, q_heads, L, value_dim)`` float32. The queries are
        the last ``L`` positions: ``is_causal`` lets query ``i`` see positions
        ``0..=len - L + i``; ``attn_mask`` broadcasts to ``(batch, q_heads, L,
        len)``. The bits of ``scaled_dot_product_attention`` over the same
        stored rows."""


class Seq2Seq:
    """d2l's Bahdanau seq2seq (a GRU encoder, and a GRU decoder whose query
    attends to the encoder's outputs additively), trained in PyTorch and
    saved as safetensors under its ``state_dict`` names with its vocabulary
    in the metadata (``vocab``, ``bos``, ``eos``, ``pad``, ``num_steps``).
    A file that cannot be read raises ``OSError``, one that is not such a
    model ``ValueError``. Decoding runs on one thread with the GIL released,
    so threads may decode at once.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None: ...
    @property
    def vocab(self) -> list[str]:
        """Token strings by id."""
    @property
    def bos(self) -> int: ...
    @property
    def eos(self) -> int: ...
    @property
    def pad(self) -> int: ...
    @property
    def num_steps(self) -> int:
        """The source length it was trained with; the default step count."""
    def source(self, tokens: Sequence[str]) -> Tuple[npt.NDArray[np.int64], int]:
        """``(ids, valid_len)``: ``ids (num_steps,)`` holds the tokens' ids,
        ``<eos>``, then ``<pad>``. ``tokens`` is a sequence of strings, one
        per token (a ``str`` itself is refused). An unknown token or more
        than ``num_steps - 1`` raise ``ValueError`` (d2l would read the first
        as ``<unk>`` and cut the second short)."""
    def words(self, ids: npt.ArrayLike) -> list[str]:
        """Token strings of ``ids`` up to (not including) the first ``<eos>``."""
    def greedy_decode(
        self,
        src: npt.ArrayLike,
        src_valid_lens: npt.ArrayLike,
        num_steps: Optional[int] = None,
        bos: Optional[int] = None,
        stop_at: Optional[int] = None,
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """d2l's ``predict_step``: ``src (B, T)`` integer ids with
        ``src_valid_lens (B,)`` -> ``tokens (B, num_steps)`` and
        ``attention_weights (B, num_steps, T)``. ``num_steps`` and ``bos``
        default to the model's; with ``stop_at``, a sequence that emits that
        id keeps emitting it, with zero weights."""
    def translate(self, sources: Sequence[Sequence[str]]) -> list[list[str]]:
        """Each source's tokens decoded until ``<eos>``, as token strings,
        in one batch. A refused source is named, as ``sources[i]``."""
