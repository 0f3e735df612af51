"""A cache of decoded images: uint8 arrays in ``.npy`` files, keyed by what they were decoded from.

Decoding CIFAR-10's 60,000 JPEGs takes ~25 s; reading the decoded arrays back takes well under one.
An entry is one folder ``<cache>/decoded/<key>/`` holding ``<name>.npy`` files, written whole into a
temporary folder and renamed into place (a reader sees all of an entry or none of it). The key
hashes the source's path, size and modification time, so a changed source is decoded again; the
source itself is only read. Entries are read with ``np.load(allow_pickle=False)``: data, never code.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnnviz.datasets.locate import cache_home

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the decoding changes, so old entries are not reused


def cache_key(*parts: object) -> str:
    """A short hex digest of ``parts`` (paths, sizes, mtimes, options) and the cache format."""
    return hashlib.sha256(json.dumps([FORMAT, *[str(p) for p in parts]]).encode()).hexdigest()[:20]


def source_stamp(path: Path) -> tuple[str, int, int]:
    """``(resolved path, size, mtime_ns)`` of a file: what a cache key of its contents needs."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def cached_arrays(key: str, names: Sequence[str], build: Callable[[], dict[str, np.ndarray]],
                  want: Sequence[str] | None = None, root: Path | None = None) -> dict[str, np.ndarray]:
    """The arrays ``want`` (default: all ``names``) of entry ``key``; ``build()`` makes all ``names``
    (stored for the next time) when the entry is absent.

    Arrays come back memory-mapped read-only: pages are read when images are used, so a run on a
    small ``--limit`` of a big split touches only what it reads. A damaged entry is rebuilt; a cache
    folder that cannot be written only costs the next run another decode (logged), never this run.
    """
    want = list(want or names)
    folder = (root or cache_home() / "decoded") / key
    if all((folder / f"{n}.npy").is_file() for n in names):
        try:
            out = {n: np.load(folder / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in want}
            log.info("decoded images from the cache %s", folder)
            return out
        except (OSError, ValueError) as e:  # truncated / foreign file: decode again
            log.warning("ignoring damaged cache entry %s (%s)", folder, e)
    arrays = build()
    try:
        from cnnviz.atomic import atomic_dir

        with atomic_dir(folder) as tmp:
            for n in names:
                np.save(tmp / f"{n}.npy", arrays[n], allow_pickle=False)
        log.info("cached decoded images in %s", folder)
    except OSError as e:
        log.warning("could not write the decoded-image cache %s (%s); the next run decodes again", folder, e)
    return {n: arrays[n] for n in want}
