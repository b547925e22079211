"""Read the character vectors stored in R's data files, without R.

The real-model chapter's corpus (Jane Austen's novels) comes as an R package's data, in one of
two forms:

- an installed package's *lazy-load database*: ``data/Rdata.rdx`` (a compressed index: each
  object's offset and length) and ``data/Rdata.rdb`` (the objects one after another, each a
  4-byte length followed by its compressed serialisation); this is what Debian's
  ``r-cran-<name>`` packages and R's ``install.packages`` leave on disk;
- a saved workspace, ``.rda`` / ``.RData``: ``RDX2``/``RDX3`` followed by one serialisation of
  a list of named objects, the whole file gzip-, bzip2- or xz-compressed (a source package's
  ``data/`` folder).

Both use R's serialisation format (XDR: big-endian integers and doubles). This reader knows the
few node types that data files of vectors use (NULL, symbols, pairlists, character, logical,
integer and double vectors, lists, references) and refuses anything else with a clear error.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path

_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC, _REF = 254, 1, 2, 9, 10, 13, 14, 16, 19, 255
_LATIN1, _UTF8 = 1 << 2, 1 << 3  # the encoding bits of a string's "levels"


class RVector(list):
    """An R vector as a Python list; ``attributes`` holds its attributes (``names``, ...)."""

    attributes: dict


class _Reader:
    """One pass over a serialisation stream."""

    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source, self.refs = data, 0, source, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.source}: expected R serialised data, got a stream that ends early")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        return n if n != -1 else (self.int() << 32) + self.int()  # a "long vector"

    def header(self) -> None:
        if self.take(2) != b"X\n":
            raise ValueError(f"{self.source}: expected R's XDR serialisation (starting 'X\\n')")
        version = self.int()
        self.take(8)  # the writer's R version, the oldest R that can read it
        if version == 3:
            self.take(self.int())  # the native encoding's name
        elif version != 2:
            raise ValueError(f"{self.source}: expected serialisation version 2 or 3, got {version}")

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == _NIL:
            return None
        if kind == _REF:
            return self.refs[(flags >> 8 or self.int()) - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _LIST:  # a pairlist: (tag, value) pairs, as a dict
            out = {}
            while kind == _LIST:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else str(len(out))
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            if kind != _NIL:
                raise ValueError(f"{self.source}: expected a pairlist to end with NULL, got type {kind}")
            return out
        if kind == _CHAR:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            return self.take(n).decode("latin-1" if (flags >> 12) & _LATIN1 else "utf-8")
        if kind == _STR or kind == _VEC:
            value = RVector(self.item() for _ in range(self.length()))
        elif kind in (_LGL, _INT, _REAL):
            n = self.length()
            code = "d" if kind == _REAL else "i"
            value = RVector(struct.unpack(f">{n}{code}", self.take((8 if kind == _REAL else 4) * n)))
        else:
            raise ValueError(
                f"{self.source}: expected R data of vectors, got an R object of SEXP type {kind}"
            )
        value.attributes = self.item() if has_attr else {}
        return value


def _unserialise(data: bytes, source: str):
    reader = _Reader(data, source)
    reader.header()
    return reader.item()


def _named(vector: RVector) -> dict:
    """An R list with a ``names`` attribute as a dict."""
    return dict(zip(vector.attributes["names"], vector))


def _decompress(data: bytes) -> bytes:
    """A whole file, gzip-, bzip2- or xz-compressed (or not at all), by its magic bytes."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def read_r_data(path: str | Path) -> dict[str, RVector]:
    """The objects stored in an R data file: a lazy-load database (give the ``.rdx`` or ``.rdb``)
    or a saved workspace (``.rda`` / ``.RData``), by name. Character vectors come back as lists
    of ``str`` (``None`` for ``NA``)."""
    path = Path(path)
    if path.suffix in (".rdx", ".rdb"):
        index = _named(_unserialise(_decompress(path.with_suffix(".rdx").read_bytes()), str(path)))
        method = index["compressed"][0]
        blob_file = path.with_suffix(".rdb").read_bytes()
        objects = {}
        for name, (offset, size) in _named(index["variables"]).items():
            blob = blob_file[offset + 4 : offset + size]  # after the uncompressed length
            if method in (2, 3):  # bzip2 or xz: a type byte ('2', 'X', 'Z' or '0') comes first
                kind, blob = blob[:1], blob[1:]
                blob = {b"2": bz2.decompress, b"X": lzma.decompress, b"Z": zlib.decompress}.get(
                    kind, lambda b: b
                )(blob)
            else:
                blob = zlib.decompress(blob)
            objects[name] = _unserialise(blob, f"{path}:{name}")
        return objects
    data = _decompress(path.read_bytes())
    if data[:5] not in (b"RDX2\n", b"RDX3\n"):
        raise ValueError(f"path={str(path)!r}: expected an R workspace (.rda, starting 'RDX2' or 'RDX3')")
    return dict(_unserialise(data[5:], str(path)))
