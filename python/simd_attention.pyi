"""Attention on CPUs: SDPA with PyTorch's argument names and semantics, and
Bahdanau's additive attention with d2l's, over NumPy arrays.

Arrays are borrowed in place when C-contiguous (other layouts are copied
once), the GIL is released while the engine computes on every core
(``RAYON_NUM_THREADS`` sets how many), and results are bit-identical at any
thread count. Bad shapes or types raise ``ValueError`` or ``TypeError`` whose
message names the argument, the expected value and the actual one.
"""

from typing import Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

Floats = Union[npt.NDArray[np.float32], npt.NDArray[np.float16]]

def backend() -> str:
    """The SIMD backend in use, e.g. ``"avx512"``, ``"avx2"`` or ``"portable"``."""

def scaled_dot_product_attention(
    query: Floats,
    key: Floats,
    value: Floats,
    attn_mask: Optional[Union[npt.NDArray[np.bool_], npt.NDArray[np.float32]]] = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> npt.NDArray[np.float32]:
    """``torch.nn.functional.scaled_dot_product_attention`` on the CPU.

    query ``(B, Hq, L, E)``, key ``(B, Hkv, S, E)``, value ``(B, Hkv, S, Ev)``
    -> ``(B, Hq, L, Ev)`` float32. The leading ``B`` or ``B, H`` may be left
    out of all three. float32 and float16 are read as stored and computed in
    float32. ``attn_mask``: bool (True takes part) or float32 (added to the
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
