"""Training: scratch, linear probe, fine-tune and LP-FT runs, evaluation and learning-rate sweeps.

``TrainConfig`` (fields mirror ``cnnviz train``'s flags) -> ``train_run(cfg)`` -> RUN_DIR with
``ckpt.pt``, ``metrics.json``, ``confusion.png``, ``curves.png``. ``evaluate_model`` scores any model
on a dataset; ``run_sweep`` trains a grid of settings and summarizes it.
"""

from cnnviz.train.config import MODES, TrainConfig, TrainError
from cnnviz.train.loop import default_run_dir, evaluate_model, train_run
from cnnviz.train.sweep import run_sweep

__all__ = ["MODES", "TrainConfig", "TrainError", "default_run_dir", "evaluate_model", "run_sweep", "train_run"]
