"""Reads PyTorch ``torch.save`` zip archives into numpy without PyTorch, and without
ever unpickling an arbitrary object.

A checkpoint is untrusted input: its ``data.pkl`` may name any importable callable,
which ``pickle`` would call. The unpickler below resolves only the names that a
state_dict needs (tensor rebuild functions, storage types, ``OrderedDict``) to local,
side-effect-free stand-ins; anything else raises :class:`UnsafeCheckpointError` before a
single object is built from it.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from zlib import error as zlib_error

import numpy as np

from swiftformer_tf.errors import CheckpointError, UnsafeCheckpointError


_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Namespace:
    """Inert stand-in for ``argparse.Namespace`` (training checkpoints store their args)."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])
    if storage_offset < 0 or min(size) < 0 or min(stride) < 0:
        raise CheckpointError(f"invalid tensor layout: offset {storage_offset}, size {size}, "
                              f"stride {stride}")
    itemsize = storage.dtype.itemsize
    needed = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if min(size) > 0 and needed > storage.size:
        raise CheckpointError(f"tensor of size {size} runs past its storage ({storage.size} elements)")
    # A saved tensor never has more elements than its storage; one that does (stride 0)
    # would make a tiny file allocate without bound.
    if int(np.prod(size, dtype=np.float64)) > storage.size:
        raise CheckpointError(f"tensor of size {size} declares more elements than its storage "
                              f"holds ({storage.size})")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_unused):
    return data


def _rebuild_from_type(func, _new_type, args, _state):
    return func(*args)


_SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): object,
    ("torch.nn.parameter", "Parameter"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): _Namespace,
}
_SAFE_GLOBALS.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})


def _bfloat16_to_float32(raw: bytes) -> np.ndarray:
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data, archive, prefix, path, byteorder):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._path = archive, prefix, path
        self._byteorder = "<" if byteorder == "little" else ">"
        self._storages = {}

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._path}: refusing to load '{module}.{name}': a checkpoint may hold only "
                f"tensors and plain containers; nothing from it was executed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            member = f"{self._prefix}/data/{key}"
            try:
                raw = _read_stored(self._archive, member, self._path)
            except KeyError:
                raise CheckpointError(f"{self._path}: storage '{member}' is missing "
                                      f"(truncated or damaged checkpoint)") from None
            if storage_type.dtype == "bfloat16":
                array = _bfloat16_to_float32(raw)
            else:
                dtype = np.dtype(storage_type.dtype).newbyteorder(self._byteorder)
                if len(raw) % dtype.itemsize:
                    raise CheckpointError(f"{self._path}: storage '{member}' has a partial element")
                array = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
            self._storages[key] = array
        return self._storages[key]


def _read_stored(archive, member, path) -> bytes:
    """A member's bytes. torch.save stores members uncompressed; a compressed one could
    inflate a small file without bound (a zip bomb), so it is refused unread."""
    info = archive.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise CheckpointError(f"{path}: member '{member}' is compressed or encrypted; "
                              f"torch.save writes neither")
    return archive.read(member)


def load_torch_file(path) -> object:
    """The object saved by ``torch.save`` at ``path``, with tensors as numpy arrays."""
    path = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise CheckpointError(
                f"{path}: legacy (pre-1.6) PyTorch serialisation is not supported; re-save it "
                f"with a current torch.save") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive)") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise CheckpointError(f"{path}: zip archive without data.pkl, not a PyTorch checkpoint")
        prefix = pickles[0][: -len("/data.pkl")] if "/" in pickles[0] else ""
        byteorder = "little"
        if f"{prefix}/byteorder" in names:
            byteorder = archive.read(f"{prefix}/byteorder").decode().strip() or "little"
        try:
            data = _read_stored(archive, pickles[0], path)
            return _RestrictedUnpickler(data, archive, prefix, path, byteorder).load()
        except CheckpointError as err:
            if str(err).startswith(f"{path}: "):
                raise
            raise CheckpointError(f"{path}: {err}") from None  # name the file
        except (MemoryError, OverflowError):  # e.g. a BINBYTES8 declaring 2**50 bytes
            raise CheckpointError(f"{path}: damaged checkpoint (its pickle declares more data "
                                  f"than the file holds)") from None
        except RecursionError:
            raise CheckpointError(f"{path}: damaged checkpoint (nested too deeply)") from None
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
                IndexError, KeyError, AttributeError, RuntimeError, NotImplementedError,
                zlib_error) as err:
            raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: "
                                  f"{str(err)[:200]})") from None
