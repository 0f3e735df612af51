"""The ``cnnviz`` click group.

Command modules load lazily: ``cnnviz --help`` lists commands from the table below without
importing torch or any command module, so it is instant. Errors are turned into exit codes here,
once for every command: ``CnnvizError`` -> one line on stderr, exit 2; anything else -> exit 1.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

# name -> (module under cnnviz.cli, function, one-line help shown by `cnnviz --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "layers": ("inspect", "layers", "List every layer: name, type, output shape, parameters."),
    "filters": ("inspect", "filters", "Draw a conv layer's kernels as a grid."),
    "activations": ("inspect", "activations", "Show an image's feature maps at a layer."),
    "gradcam": ("cam", "gradcam", "Grad-CAM and its family over images (overlay PNGs, raw maps, JSON)."),
    "attribute": ("cam", "attribute", "Gradient attributions (saliency, IG, SmoothGrad, occlusion...)."),
    "faithfulness": ("cam", "faithfulness", "Rank explanation methods by deletion/insertion AUC and ROAD."),
    "sanity": ("sanity", "sanity", "Sanity checks: do the maps change when the weights are randomized?"),
    "maximize": ("units", "maximize", "Synthesize the image that maximizes a class or unit."),
    "rf": ("units", "rf", "Analytic or effective receptive fields of layers."),
    "examples": ("units", "examples", "Dataset images and patches that most excite a class or unit."),
    "train": ("train", "train", "Train scratch / linear probe / fine-tune / LP-FT on a dataset."),
    "evaluate": ("train", "evaluate", "Accuracy, per-class metrics and confusion of a checkpoint."),
    "sweep": ("train", "sweep", "Learning-rate (and mode/model) sweep with a summary plot."),
    "augment": ("train", "augment", "Preview an augmentation preset on an image."),
    "compare": ("compare", "compare", "Compare models: CKA, filter drift, attention agreement, per-class."),
    "gallery": ("gallery", "gallery", "Build a static HTML gallery of models, images and comparisons."),
    "demo": ("gallery", "demo", "The main job: train, compare and publish a gallery on Fashion-MNIST."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, and which maps errors to exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        try:
            mod = importlib.import_module(f"cnnviz.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"cnnviz.cli.{module}":
                return _unavailable(name)
            raise
        return getattr(mod, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        from cnnviz.errors import CnnvizError

        try:
            return super().invoke(ctx)
        except CnnvizError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except MemoryError:
            click.echo("error: out of memory; try a smaller --batch-size or --image-size.", err=True)
            ctx.exit(1)


def _unavailable(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def cmd() -> None:
        click.echo(f"error: `cnnviz {name}` is not available in this build.", err=True)
        sys.exit(2)

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="cnnviz")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """cnnviz: see what convolutional networks learn.

    \b
    Examples:
      cnnviz layers
      cnnviz filters --layer conv_stem
      cnnviz activations photo.jpg --layer blocks.2
      cnnviz gradcam photo.jpg
      cnnviz train --data fashion-mnist --mode lpft --epochs 2 --out runs/lpft
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cnnviz")


if __name__ == "__main__":
    main()
