"""Snapshot files of the embedded index's cached vectors: a large cube's cold load is one
sequential read instead of a row read per vector.

Loading a 100k-item cube's vectors from the `docs` table reads 100k rows (rid, id, 1.5 KB vector)
and copies each into the matrix: about 300 ms on a quiet machine, 450-720 ms under load (issue 20).
A snapshot holds the same rows packed (rids, the float32 matrix, the ids) in one file beside the
index, read straight into the `CubeVectors` matrix. It is a derived cache: the table stays the
system of record, and the index replays what changed after the snapshot from its change log
(`SqliteIndex`), so a search stays exact.

One file per (cube, dimension), named from a hash of the cube id (ids are free text). Layout, all
little-endian: the magic and format version, a JSON header (the index's instance id, cube id,
dimension, rows, the change-log position covered, the ids' byte length), then the rids (int64),
the matrix (float32, rows x dimension), each id's length in characters (int32) and the ids as one
UTF-8 text. A file is written to a temporary name, synced, and renamed into place, so a reader
sees a whole file or none, after a power loss too; one that does not parse, is not exactly its
declared size, or names another instance, cube, dimension or position is ignored (and rewritten
by the index).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from memcube_local.sqlite.vector_cache import CubeVectors

MAGIC = b"MCVECSNP"
FORMAT = 1
_PREFIX = struct.Struct("<8sII")  # magic, format version, JSON header length
_HEADER_LIMIT = 1 << 20
SUFFIX = ".vec"


def directory_of(index: Path) -> Path:
    """The snapshot directory of an index file: `index-vectors/` beside `index.db` (a name that a
    glob of the database and its WAL files, `index.db*`, does not take in)."""
    return index.with_name(index.stem + "-vectors")


@dataclass(frozen=True)
class Stamp:
    """What a snapshot must be of to be used: this index file (its random instance id, so a file
    left by a deleted and recreated index never matches), the cube, the vectors' dimension and the
    change-log position the index registered for it."""

    instance: str
    cube_id: str
    dimension: int
    seq: int


class SnapshotFiles:
    """The snapshot directory of one index file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, cube_id: str, dimension: int) -> Path:
        return self.directory / f"{_name(cube_id)}-{dimension}{SUFFIX}"

    def read(self, stamp: Stamp) -> CubeVectors | None:
        """The cube's vectors from its snapshot, or None when there is no usable file."""
        try:
            with self.path(stamp.cube_id, stamp.dimension).open("rb") as f:
                return _read(f, stamp)
        except (OSError, ValueError, UnicodeDecodeError):  # missing, unreadable or malformed: not used
            return None

    def stage(self, stamp: Stamp, cube: CubeVectors) -> Path:
        """Write the cube's snapshot under a temporary name (raises OSError, leaving nothing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.path(stamp.cube_id, stamp.dimension).with_name(
            f"{_name(stamp.cube_id)}-{stamp.dimension}.tmp-{uuid.uuid4().hex}"
        )
        try:
            with temp.open("wb") as f:
                _write(f, stamp, cube)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename can be: a power loss never leaves a
                # whole-sized file of the right name with pages that never reached the disk (~80 ms at 100k)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def publish(self, temp: Path, stamp: Stamp) -> None:
        """Rename a staged file into place (atomic), and drop the cube's files of other dimensions."""
        final = self.path(stamp.cube_id, stamp.dimension)
        temp.replace(final)
        _sync_directory(self.directory)  # the rename itself survives a power loss
        for other in self.directory.glob(f"{_name(stamp.cube_id)}-*{SUFFIX}"):
            if other != final:
                other.unlink(missing_ok=True)

    def remove(self, cube_id: str) -> None:
        """Every file of the cube, staged ones included (erasure)."""
        if self.directory.is_dir():
            for path in self.directory.glob(f"{_name(cube_id)}-*"):
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Every snapshot file of the index (a reset)."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.is_file():
                    path.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _name(cube_id: str) -> str:
    return hashlib.sha256(cube_id.encode()).hexdigest()[:32]


def _write(f: BinaryIO, stamp: Stamp, cube: CubeVectors) -> None:
    rids, matrix, ids = cube.held()
    text = "".join(ids).encode()
    header = {
        "instance": stamp.instance,
        "cube_id": stamp.cube_id,
        "dimension": stamp.dimension,
        "rows": len(ids),
        "seq": stamp.seq,
        "ids_bytes": len(text),
    }
    head = json.dumps(header).encode()
    f.write(_PREFIX.pack(MAGIC, FORMAT, len(head)))
    f.write(head)
    f.write(np.ascontiguousarray(rids, dtype="<i8").data)
    f.write(np.ascontiguousarray(matrix, dtype="<f4").data)
    f.write(np.fromiter((len(i) for i in ids), dtype="<i4", count=len(ids)).data)
    f.write(text)


def _read(f: BinaryIO, stamp: Stamp) -> CubeVectors | None:
    magic, version, length = _PREFIX.unpack(_exactly(f, _PREFIX.size))
    if magic != MAGIC or version != FORMAT or length > _HEADER_LIMIT:
        return None
    header = json.loads(_exactly(f, length))
    rows, dimension, text_bytes = _header_fits(header, stamp)
    size = _PREFIX.size + length + rows * (8 + 4 * dimension + 4) + text_bytes
    if os.fstat(f.fileno()).st_size != size:  # truncated, or something appended
        return None
    cube = CubeVectors.empty(dimension, rows)
    rids, matrix = cube.room(rows)
    _fill(f, rids)
    _fill(f, matrix)  # one copy: from the page cache into the matrix
    lengths = np.frombuffer(_exactly(f, 4 * rows), dtype="<i4")
    text = _exactly(f, text_bytes).decode()
    ends = np.cumsum(lengths, dtype=np.int64)
    if rows and (int(ends[-1]) != len(text) or int(lengths.min()) < 0):
        return None
    bounds = ends.tolist()
    cube.adopt([text[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)])
    return cube


def _header_fits(header: Any, stamp: Stamp) -> tuple[int, int, int]:
    """(rows, dimension, id bytes) of a header naming exactly `stamp` (ValueError otherwise)."""
    if not isinstance(header, dict):
        raise ValueError("not a snapshot header")
    named = (header.get("instance"), header.get("cube_id"), header.get("dimension"), header.get("seq"))
    if named != (stamp.instance, stamp.cube_id, stamp.dimension, stamp.seq):
        raise ValueError("a snapshot of another index, cube, dimension or position")
    rows, text_bytes = header.get("rows"), header.get("ids_bytes")
    if not isinstance(rows, int) or not isinstance(text_bytes, int) or rows < 0 or text_bytes < 0:
        raise ValueError("a malformed snapshot header")
    return rows, stamp.dimension, text_bytes


def _exactly(f: BinaryIO, size: int) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise ValueError("a truncated snapshot")
    return data


def _fill(f: BinaryIO, array: np.ndarray[Any, Any]) -> None:
    """Read the file's next bytes straight into `array`'s buffer."""
    view = array.data.cast("B")
    done = 0
    while done < len(view):
        read = f.readinto(view[done:])  # type: ignore[attr-defined]
        if not read:
            raise ValueError("a truncated snapshot")
        done += read
