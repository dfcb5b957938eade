"""Uncompressed ``.npz`` files whose members are read in place (memory-mapped), and written from spills.

``np.load`` cannot memory-map a member of an ``.npz``: it reads it whole. A member stored without
compression (``ZIP_STORED``) is a plain ``.npy`` inside the zip, so its data is a byte range of the
file: :func:`map_members` finds it (the zip's local header, then the ``.npy`` header) and returns an
array over a private (copy-on-write) mapping. Untouched pages are never read; touched ones are file
cache the kernel can drop. Copy-on-write keeps the arrays writeable plain ndarrays, so compiled code
sees the same types as for arrays in RAM (nothing writes to them).

:func:`write_members` writes such a file from arrays and from :class:`Spill` files (raw values
appended in chunks while a generator runs, so nothing holds a whole column), each member's data
aligned to 64 bytes (the ``.npy`` header is padded) so the mapped arrays are aligned.
"""
from __future__ import annotations

import mmap
import os
import shutil
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sim.errors import InputError

_ALIGN = 64
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"


class Spill:
    """One column written in chunks to a raw temporary file (``append``), stored later as a member."""

    def __init__(self, path: Path, dtype) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()

    def append(self, values) -> None:
        a = np.ascontiguousarray(values, dtype=self.dtype)
        self._fh.write(a.tobytes())
        self.count += a.size

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], data_at: int) -> bytes:
    """A version 1.0/2.0 ``.npy`` header padded with spaces so the data after it starts 64-aligned
    when the header is written at file offset `data_at`."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(d).encode("latin1")
    for major, lenfmt in ((1, "<H"), (2, "<I")):
        pre = 6 + 2 + struct.calcsize(lenfmt)  # magic, version, header length
        pad = (-(data_at + pre + len(text) + 1)) % _ALIGN
        body = text + b" " * pad + b"\n"
        if major == 2 or len(body) < 65536:
            return b"\x93NUMPY" + bytes([major, 0]) + struct.pack(lenfmt, len(body)) + body
    raise AssertionError("unreachable")


def write_members(path: Path, members: Mapping[str, np.ndarray | Spill]) -> None:
    """Write an uncompressed ``.npz`` at `path` (callers stage it: io_safe.atomic_path). Members are
    named ``<key>.npy`` as np.savez does, so ``np.load`` reads the file too."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, m in members.items():
            if isinstance(m, Spill):
                m.close()
                dtype, shape = m.dtype, (m.count,)
            else:
                arr = np.asarray(m)  # not ascontiguousarray: that makes scalars 1-d
                if not arr.flags.c_contiguous:
                    arr = arr.copy()
                dtype, shape = arr.dtype, arr.shape
            with zf.open(f"{key}.npy", "w", force_zip64=True) as out:
                assert zf.fp is not None
                out.write(_npy_header(dtype, shape, zf.fp.tell()))
                if isinstance(m, Spill):
                    with open(m.path, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
                else:
                    out.write(arr.reshape(-1).view(np.uint8).data)


def _member_array(mm: mmap.mmap, fh, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    key = info.filename.removesuffix(".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise InputError(f"member {key!r} is compressed (cannot be memory-mapped)", where=where)
    fh.seek(info.header_offset)
    raw = fh.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
        raise InputError(f"member {key!r}: bad zip local header", where=where)
    fields = _LOCAL_HEADER.unpack(raw)
    start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
    fh.seek(start)
    try:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
    except (ValueError, SyntaxError, TypeError) as e:
        raise InputError(f"member {key!r}: bad .npy header ({e})", where=where) from None
    if any(d < 0 for d in shape):
        raise InputError(f"member {key!r}: negative shape {shape}", where=where)
    if dtype.hasobject or fortran or dtype.itemsize == 0:
        raise InputError(f"member {key!r}: unsupported array (object, Fortran order or empty dtype)", where=where)
    data = fh.tell()
    count = int(np.prod(shape, dtype=object))
    if data + count * dtype.itemsize > start + info.file_size or data + count * dtype.itemsize > len(mm):
        raise InputError(f"member {key!r}: shape {shape} is larger than its data", where=where)
    return np.frombuffer(mm, dtype=dtype, count=count, offset=data).reshape(shape)


def map_members(path: Path) -> dict[str, np.ndarray]:
    """Every ``<key>.npy`` member of an uncompressed ``.npz`` as an array over a copy-on-write mapping
    of the file; InputError (naming the file and member) for anything else."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            zf = zipfile.ZipFile(fh)
            infos = zf.infolist()
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise InputError("empty file", where=where)
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
            return {i.filename.removesuffix(".npy"): _member_array(mm, fh, i, where) for i in infos}
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, struct.error) as e:
        raise InputError(f"cannot read .npz workload ({e})", where=where) from None


def stored_uncompressed(path: Path) -> bool:
    """True when every member of the zip at `path` is stored (memory-mappable)."""
    with zipfile.ZipFile(path) as zf:
        return all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
