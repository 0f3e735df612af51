"""Options shared by commands, so every command spells them the same way (DESIGN.md conventions)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from cnnviz import limits
from cnnviz.atomic import dumps_json  # noqa: F401  (re-exported: the one strict JSON writer for the CLI)

# One option-bounds layer: every command takes its sizes from here, so absurd values are refused
# (exit 2, one line) before any work starts, with the same limits everywhere. The numbers live in
# cnnviz.limits, where the library's entry points and the checkpoint schema check the same ranges.
IMAGE_SIDE = click.IntRange(*limits.IMAGE_SIDE)  # a model input side / canvas side in pixels
BATCH_SIZE = click.IntRange(*limits.BATCH_SIZE)
NUM_WORKERS = click.IntRange(*limits.NUM_WORKERS)
STEPS = click.IntRange(*limits.STEPS)  # optimization / integration / curve steps
IMAGE_COUNT = click.IntRange(*limits.IMAGE_COUNT)  # --limit / --eval-limit / --num: dataset images to look at
TOP_K = click.IntRange(*limits.TOP_K)  # examples to keep
DRAWS = click.IntRange(*limits.DRAWS)  # images / noise draws averaged (rf --effective)
SEED = click.IntRange(*limits.SEED)

MODEL_HELP = "checkpoint path (*.pt), timm name (efficientnet_lite0, timm:NAME), torchvision:NAME, or simplecnn."


def model_option(f: Callable) -> Callable:
    f = click.option("--weights", type=click.Choice(["pretrained", "random"]), default="pretrained", show_default=True,
                     help="ImageNet weights (bundled for efficientnet_lite0/1/2) or random init; checkpoints carry their own.")(f)
    return click.option("--model", "model_spec", default="efficientnet_lite0", show_default=True, metavar="SPEC", help=MODEL_HELP)(f)


def device_option(f: Callable) -> Callable:
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
                        help="Where to compute.")(f)


def seed_option(f: Callable) -> Callable:
    return click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (logs stay on stderr).")(f)


def load(model_spec: str, weights: str, device: str = "cpu"):  # noqa: ANN201
    """``(model, info, torch.device)`` for the common options (heavy imports happen here)."""
    from cnnviz.device import resolve_device
    from cnnviz.models import load_model

    dev = resolve_device(device)
    model, info = load_model(model_spec, weights=weights, device=dev)
    return model, info, dev


def emit_json(obj: Any) -> None:
    """One JSON document per line on stdout."""
    sys.stdout.write(dumps_json(obj) + "\n")
    sys.stdout.flush()


def info(msg: str) -> None:
    """A human message on stderr (stdout is reserved for results / JSON)."""
    click.echo(msg, err=True)


def safe_name(text: str) -> str:
    """A file-name-safe version of a layer or class name (``features.3`` stays ``features.3``)."""
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    return keep.strip("._") or "out"
