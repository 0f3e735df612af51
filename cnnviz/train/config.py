"""``TrainConfig``: one dataclass whose fields mirror ``cnnviz train``'s flags.

Kept free of torch so the CLI and the gallery's ``demo`` can build one cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnnviz.errors import CnnvizError

MODES = ("scratch", "lp", "ft", "lpft")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "none")
AUGMENTS = ("none", "basic", "strong")
BN_MODES = ("auto", "frozen", "train")
# default learning rates per optimizer: scratch (whole network from random init), fine-tuning a
# pretrained network (lower: large steps distort the features worth keeping), linear probe
DEFAULT_LR = {"adamw": {"scratch": 1e-3, "ft": 1e-4, "lp": 1e-2}, "sgd": {"scratch": 5e-2, "ft": 5e-3, "lp": 1e-1}}
# fields that define the recipe: --resume refuses to continue a run started with different ones
RECIPE_FIELDS = ("data", "model", "weights", "mode", "epochs", "lp_epochs", "image_size", "batch_size", "lr", "lp_lr",
                 "backbone_lr_scale", "bn", "optimizer", "weight_decay", "scheduler", "augment", "label_smoothing", "limit",
                 "eval_limit", "seed", "unfreeze", "probe_layer", "random_labels", "grad_checkpointing")
# Sizes no run can use; the CLI refuses them first with the same bounds (cnnviz.cli.common).
MAX_IMAGE_SIDE, MAX_BATCH_SIZE, MAX_WORKERS = 2048, 4096, 64


class TrainError(CnnvizError):
    """A training run that cannot start or cannot go on (bad recipe, diverged loss, resume mismatch)."""


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults give a sensible CPU run.

    ``lr`` is the learning rate of the whole-network phases (scratch, ft, the FT part of lpft) and
    ``lp_lr`` of the linear-probe phases; None picks ``DEFAULT_LR[optimizer]`` (AdamW: 1e-3 from
    scratch, 1e-4 when fine-tuning pretrained weights, 1e-2 for the probe). ``bn`` ``auto`` keeps a
    pretrained network's BatchNorm statistics fixed while fine-tuning (its affine weights still
    train): switching them to batch statistics of a new domain changes every feature the probe was
    fit on, which is the distortion LP-FT exists to avoid. ``backbone_lr_scale``
    multiplies the backbone's LR during fine-tuning (the head keeps ``lr``). ``image_size`` None means
    the data's own size for simplecnn, and at least 64 px for ImageNet architectures.
    ``unfreeze`` N (ft, and the FT part of lpft): only the last N stages and the head train, the
    earlier stages stay frozen in eval mode (their BatchNorm statistics too). ``probe_layer``: cut the
    network after that layer and train a new linear head on its globally pooled features (a probe of
    an earlier layer; with ``lp`` the classic "which layer transfers" experiment). ``random_labels``:
    the training labels are permuted with ``seed`` (test labels stay real) - the data-randomization
    sanity check of Adebayo et al. 2018.
    ``grad_checkpointing`` (timm models): whole-network epochs keep only each block's input and
    recompute the rest in the backward pass - about a third more compute for a fraction of the
    activation memory, which is what a large batch at 224 px costs.
    ``stop_after`` ends the run after that many epochs in total, as if it were killed (for tests
    and time-boxed jobs; finish it later with ``resume``). ``max_steps`` caps the batches of every
    training epoch (smoke tests and memory benchmarks).
    """

    data: str = "fashion-mnist"
    model: str = "efficientnet_lite0"
    weights: str | None = None  # None: random for scratch, pretrained otherwise
    mode: str = "lpft"
    epochs: int = 2
    lp_epochs: int | None = None  # lpft: LP epochs before fine-tuning (default epochs // 2, at least 1)
    image_size: int | None = None
    batch_size: int = 64
    lr: float | None = None
    lp_lr: float | None = None
    backbone_lr_scale: float = 1.0
    bn: str = "auto"  # BatchNorm statistics while training all parameters: auto = frozen if pretrained
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    scheduler: str = "cosine"
    augment: str = "none"
    label_smoothing: float = 0.0
    limit: int | None = None
    eval_limit: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    resume: bool = False
    data_root: str | None = None
    compile: bool = False
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a GradScaler
    num_workers: int = 0
    cache_features: bool = True  # LP without augmentation: backbone features computed once
    preload: bool = True  # in-memory datasets: hold the split's uint8 images as one tensor (on the GPU when it fits)
    tensorboard: bool = True
    stop_after: int | None = None
    unfreeze: int | None = None
    probe_layer: str | None = None
    random_labels: bool = False
    grad_checkpointing: bool = False
    max_steps: int | None = None

    def validate(self) -> TrainConfig:
        """Raise ``TrainError`` for values no run could use; returns self."""
        checks = [
            (self.mode in MODES, f"--mode {self.mode!r} is not one of {', '.join(MODES)}."),
            (self.optimizer in OPTIMIZERS, f"--optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}."),
            (self.scheduler in SCHEDULERS, f"--scheduler {self.scheduler!r} is not one of {', '.join(SCHEDULERS)}."),
            (self.bn in BN_MODES, f"--bn {self.bn!r} is not one of {', '.join(BN_MODES)}."),
            (self.augment in AUGMENTS, f"--augment {self.augment!r} is not one of {', '.join(AUGMENTS)}."),
            (self.weights in (None, "pretrained", "random"), f"--weights {self.weights!r} is not one of pretrained, random."),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}."),
            (1 <= self.batch_size <= MAX_BATCH_SIZE, f"--batch-size must be 1-{MAX_BATCH_SIZE}, got {self.batch_size}."),
            (self.image_size is None or 8 <= self.image_size <= MAX_IMAGE_SIDE,
             f"--image-size must be 8-{MAX_IMAGE_SIDE}, got {self.image_size}."),
            (0 <= self.num_workers <= MAX_WORKERS, f"--num-workers must be 0-{MAX_WORKERS}, got {self.num_workers}."),
            (self.unfreeze is None or self.unfreeze >= 0, f"--unfreeze must be 0 or more, got {self.unfreeze}."),
            (self.unfreeze is None or self.mode in ("ft", "lpft"),
             f"--unfreeze chooses what fine-tuning trains: use it with --mode ft or lpft, not {self.mode}."),
            (self.probe_layer is None or bool(str(self.probe_layer).strip()), "--probe-layer is empty."),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be positive, got {self.max_steps}."),
            (self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}."),
            (self.lp_lr is None or self.lp_lr > 0, f"--lp-lr must be positive, got {self.lp_lr}."),
            (self.backbone_lr_scale >= 0, f"--backbone-lr-scale must be >= 0, got {self.backbone_lr_scale}."),
            (self.limit is None or self.limit >= 1, f"--limit must be positive, got {self.limit}."),
            (self.eval_limit is None or self.eval_limit >= 1, f"--eval-limit must be positive, got {self.eval_limit}."),
            (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}."),
        ]
        for ok, msg in checks:
            if not ok:
                raise TrainError(msg)
        if self.pretrained and str(self.model).split(":")[0] == "simplecnn":  # refused before a sweep's first run
            raise TrainError(f"--mode {self.mode} starts from pretrained weights, and simplecnn has none: "
                             "use --mode scratch (or --weights random).")
        if self.mode == "lpft" and self.epochs < 2:
            raise TrainError("--mode lpft needs --epochs 2 or more (LP epochs, then fine-tuning epochs).")
        if self.lp_epochs is not None and self.mode == "lpft" and not 1 <= self.lp_epochs < self.epochs:
            raise TrainError(f"--lp-epochs must be between 1 and epochs-1 ({self.epochs - 1}), got {self.lp_epochs}.")
        return self

    @property
    def pretrained(self) -> bool:
        """Whether the run starts from pretrained weights."""
        return self.weights == "pretrained" if self.weights else self.mode != "scratch"

    @property
    def lp_epoch_count(self) -> int:
        """How many of ``epochs`` are linear-probe epochs."""
        if self.mode == "lp":
            return self.epochs
        if self.mode == "lpft":
            return self.lp_epochs if self.lp_epochs is not None else max(1, self.epochs // 2)
        return 0

    @property
    def freeze_bn(self) -> bool:
        """Keep BatchNorm running statistics fixed in whole-network epochs (default: when pretrained)."""
        return self.bn == "frozen" or (self.bn == "auto" and self.pretrained)

    def phase(self, epoch: int) -> str:
        """``lp`` or ``train`` (all parameters) for 0-based ``epoch``."""
        return "lp" if epoch < self.lp_epoch_count else "train"

    def learning_rate(self, phase: str) -> float:
        """The base LR of ``phase`` (``lp`` or ``train``): the flag, else ``DEFAULT_LR``."""
        table = DEFAULT_LR[self.optimizer]
        if phase == "lp":
            return float(self.lp_lr if self.lp_lr is not None else table["lp"])
        return float(self.lr if self.lr is not None else table["ft" if self.pretrained else "scratch"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
