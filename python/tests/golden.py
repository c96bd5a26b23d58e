"""The repository's golden cases (``tests/data/*.safetensors``, made by d2l and
PyTorch in float64), read with NumPy alone: a safetensors file is an 8-byte
little-endian header length, a JSON header, then the raw tensors."""

import json
import pathlib
import struct

import numpy as np

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"
DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8, "I8": np.int8, "BF16": np.uint16}


def load(name):
    """(tensors by name, metadata) of ``tests/data/<name>.safetensors``."""
    raw = (DATA / f"{name}.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    body = raw[8 + n :]
    tensors = {}
    for key, t in header.items():
        start, end = t["data_offsets"]
        tensors[key] = np.frombuffer(body[start:end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


def assert_close(test, got, want, what):
    """The golden tolerance: 5e-5 absolute plus 1e-4 relative."""
    want = np.asarray(want, dtype=np.float64)
    test.assertEqual(got.shape, want.shape, what)
    err = np.abs(got.astype(np.float64) - want) - (5e-5 + 1e-4 * np.abs(want))
    test.assertTrue(np.all(err <= 0), f"{what}: worst excess {err.max():.3g}")
