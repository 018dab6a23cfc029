"""Pickle helpers shared by the CIFAR-10, ImageNet32 and TinyImages readers and the synthetic writers.

The official CIFAR-10 "python version" batches were written by Python 2's cPickle: their dict keys and string
payloads are Python 2 ``str`` objects. Python 3 therefore needs ``encoding="latin1"`` (keys come back as ``str``)
or ``encoding="bytes"`` (keys come back as ``bytes``, the ``b'data'`` seen in most tutorials) to read them.
:func:`dump_py2_pickle` writes the same opcodes, so generated stand-ins behave exactly like the real files.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import IO, Any

import numpy as np

from rsmooth.data.errors import DatasetFormatError
from rsmooth.errors import describe_exception

# What the published CIFAR-10, ImageNet32 and TinyImages pickles contain besides dicts, lists, numbers, strings and
# bytes (which need no global): numpy arrays, dtypes and scalars, under numpy 1's and numpy 2's module names, and
# ``_codecs.encode``, with which Python 3 writes ``bytes`` at protocol 2. Nothing else is ever looked up, so a
# pickle that names any other callable is refused before the callable could run.
SAFE_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class RefusedPickleObject(pickle.UnpicklingError):
    """A data pickle names a global outside :data:`SAFE_PICKLE_GLOBALS`."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise RefusedPickleObject(f"{module}.{name}")


class _Py2StrPickler(pickle._Pickler):  # the pure-Python pickler exposes the per-type dispatch table
    """Protocol-2 pickler that stores ``bytes`` as Python 2 ``str`` (BINSTRING opcodes), like Python 2 cPickle."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        size = len(obj)
        if size < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", size) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def dump_py2_pickle(obj: Any, handle: IO[bytes]) -> None:
    """Pickle ``obj`` the way Python 2 cPickle (protocol 2) did: ``bytes`` become Python 2 ``str``."""
    _Py2StrPickler(handle, protocol=2).dump(obj)


def load_pickle_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Load a pickled dict written by Python 2 or 3 and return it with ``str`` keys.

    The unpickler admits only :data:`SAFE_PICKLE_GLOBALS`: a file that would build any other object (and so
    could run code) raises :class:`DatasetFormatError` naming the file and the refused object.

    ``latin1`` maps Python 2 ``str`` one-to-one onto code points, which is also what numpy needs to rebuild arrays
    pickled by Python 2 (torchvision reads CIFAR the same way). Python 3 pickles are unaffected by the encoding.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            obj = _DataUnpickler(handle, encoding="latin1").load()
        except RefusedPickleObject as exc:
            raise DatasetFormatError(
                f"{path}: refused to unpickle {exc}: data files of this format hold only dicts, lists, numbers, "
                "strings, bytes and numpy arrays, so this file is not one (and its pickled code was not run)",
                path,
            ) from None
        except Exception as exc:  # a truncated or foreign file: say which one
            raise DatasetFormatError(
                f"{path}: cannot be unpickled ({describe_exception(exc)}); expected a pickled dict", path
            ) from exc
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def require_keys(entry: dict[str, Any], keys: tuple[str, ...], path: str | os.PathLike) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` if ``entry`` lacks any of ``keys``."""
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DatasetFormatError(f"{path}: missing key(s) {missing}; found keys {sorted(map(str, entry))}")


def read_image_rows(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(data, labels)`` of a CIFAR-10 / ImageNet32 style pickle: ``data`` uint8 ``[N, 3072]`` (each row a
    CHW-flattened 32x32 RGB image) and one label per row, checked for shape (not for range)."""
    entry = load_pickle_dict(path)
    require_keys(entry, ("data", "labels"), path)
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(f"{path}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DatasetFormatError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}")
    return data, labels
