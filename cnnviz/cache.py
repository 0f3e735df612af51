"""A content-addressed result cache: ``key -> folder of files + meta.json``.

Every unit of work (one model's filters of one layer, one Grad-CAM of one image, one comparison...)
lives under ``ROOT/objects/<key[:2]>/<key>`` with ``key = sha256(model hash, input hash, method,
params)``. An entry is complete or absent: it is built in a temporary folder and renamed into place
only when its ``compute`` returned, with ``meta.json`` written last (``cnnviz.atomic.atomic_dir``).
A ``compute`` that raises leaves nothing behind, so a rerun after a fix recomputes exactly that.

The cache root is a folder cnnviz owns (``cnnviz.atomic.claim_dir``): a non-empty folder of the
user's is refused, never written into.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.atomic import atomic_dir, claim_dir, dumps_json

log = logging.getLogger(__name__)

Compute = Callable[[Path], "dict[str, Any] | None"]


@dataclass
class Stats:
    """What a report did: ``computed`` lists ``(model name, method)`` of every cache miss."""

    computed: list[tuple[str, str]] = field(default_factory=list)
    hits: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    method_seconds: dict[str, float] = field(default_factory=dict)  # wall time of computed entries, per method

    def note(self, text: str) -> None:
        """Record a note the gallery shows (work that does not apply, e.g. no dataset); once each."""
        log.info("report: %s", text)
        if text not in self.notes:
            self.notes.append(text)


def digest(obj: Any) -> str:
    """A short stable hash of JSON-able ``obj`` (sorted keys)."""
    return hashlib.sha256(dumps_json(obj, sort_keys=True).encode()).hexdigest()[:16]


class Cache:
    """The result store under ``root``; ``get`` returns an entry, computing it only on a miss."""

    def __init__(self, root: str | os.PathLike[str], stats: Stats | None = None) -> None:
        self.root = claim_dir(root, "cache")
        self.stats = stats if stats is not None else Stats()

    @staticmethod
    def key(model_hash: str, input_hash: str, method: str, params: dict[str, Any]) -> str:
        """sha256 of everything the result depends on."""
        return hashlib.sha256(dumps_json([model_hash, input_hash, method, params], sort_keys=True).encode()).hexdigest()

    def get(self, who: str, model_hash: str, input_hash: str, method: str, params: dict[str, Any],
            compute: Compute) -> tuple[Path, dict[str, Any]]:
        """The entry's folder and meta; ``compute(tmp_dir) -> meta`` runs only on a miss.

        ``who`` names the model in ``Stats.computed``. An exception in ``compute`` propagates and
        leaves no entry.
        """
        k = self.key(model_hash, input_hash, method, params)
        d = self.root / "objects" / k[:2] / k
        meta = _read_meta(d / "meta.json")
        if meta is not None:
            self.stats.hits += 1
            return d, meta
        t0 = time.perf_counter()
        with atomic_dir(d, kind="cache-entry") as tmp:
            meta = dict(compute(tmp) or {})
            (tmp / "meta.json").write_text(dumps_json({"key": [model_hash, input_hash, method, params], **meta}), encoding="utf-8")
        self.stats.computed.append((who, method))
        self.stats.method_seconds[method] = self.stats.method_seconds.get(method, 0.0) + time.perf_counter() - t0
        return d, json.loads((d / "meta.json").read_text(encoding="utf-8"))


def _read_meta(path: Path) -> dict[str, Any] | None:
    """A complete entry's meta, or None (absent, or unreadable: then the entry is rebuilt)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("cache entry %s is unreadable (%s); recomputing it", path.parent, e)
        return None
    return meta if isinstance(meta, dict) else None


def model_hash(model: Any, info: Any) -> str:
    """sha256 of the weights (every state-dict tensor, in name order) and what interprets them."""
    h = hashlib.sha256()
    h.update(dumps_json([info.arch, info.arch_kwargs, list(info.class_names), list(info.input_size),
                         list(info.mean), list(info.std)], sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def dataset_hash(spec: str, ds: Any) -> str:
    """A cheap content digest of a labelled dataset: spec, size, labels and a sample of 16 images."""
    import numpy as np

    h = hashlib.sha256(str(spec).encode())
    n = len(ds)
    h.update(str(n).encode())
    h.update(np.asarray(ds.targets, dtype=np.int64).tobytes())
    for i in range(0, n, max(1, n // 16)):
        h.update(np.asarray(ds[i][0]).tobytes())
    return h.hexdigest()[:24]
