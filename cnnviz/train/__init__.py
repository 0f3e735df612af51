"""Training: scratch, linear probe, fine-tune and LP-FT runs, evaluation and learning-rate sweeps.

``TrainConfig`` (fields mirror ``cnnviz train``'s flags) -> ``train_run(cfg)`` -> RUN_DIR with
``ckpt.pt``, ``metrics.json``, ``confusion.png``, ``curves.png``. ``evaluate_model`` scores any model
on a dataset; ``run_sweep`` trains a grid of settings and summarizes it. Names are loaded lazily, so
``import cnnviz.train.config`` (or ``.truncate``) does not pull in the whole trainer.
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "MODES": "cnnviz.train.config", "TrainConfig": "cnnviz.train.config", "TrainError": "cnnviz.train.config",
    "default_run_dir": "cnnviz.train.loop", "evaluate_model": "cnnviz.train.loop", "train_run": "cnnviz.train.loop",
    "run_sweep": "cnnviz.train.sweep",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'cnnviz.train' has no attribute {name!r}")
