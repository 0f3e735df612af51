"""The ``cnnviz`` click group.

Command modules load lazily: ``cnnviz --help`` lists commands from the table below without
importing torch or any command module, so it is instant. Errors are turned into exit codes here,
once for every command: ``CnnvizError`` and ``OSError`` (an unwritable --out, a full disk) -> one
line on stderr, exit 2; out of memory -> one line, exit 1; a closed stdout pipe -> silent, exit 141;
anything else (a bug) -> a traceback, exit 1.
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
        return _guarded(getattr(mod, attr))

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            _refuse_repeated_options(cmd, rest)
        return name, cmd, rest

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
        except BrokenPipeError:
            # `cnnviz layers | head`: the reader left. No traceback, no message; exit like SIGPIPE would.
            _silence_stdout()
            ctx.exit(141)
        except OSError as e:
            # An unwritable --out, a path under a file, a full disk: one line naming the path, exit 2.
            # The atomic writers have already removed their temp files (cnnviz.atomic).
            from cnnviz.errors import os_error_message

            click.echo(f"error: {os_error_message(e)}", err=True)
            ctx.exit(2)
        except MemoryError:
            click.echo("error: out of memory; try a smaller --batch-size or --image-size.", err=True)
            ctx.exit(1)
        except RuntimeError as e:
            if not _is_out_of_memory(e):
                raise
            click.echo("error: out of memory; try a smaller --batch-size or --image-size.", err=True)
            ctx.exit(1)


# Parameters that name what a command writes, and those that name what it reads (besides every other
# click.Path parameter): specs that are paths when they exist (a checkpoint, a dataset folder).
OUTPUT_PARAMS = ("out", "confusion_png", "cache")
INPUT_PARAMS = ("model_spec", "models", "image", "images", "data", "data_spec", "data_root")
SEARCH_PARAMS = ("data_root",)  # where datasets are looked for: an input only when named exactly


def _refuse_repeated_options(cmd: click.Command, args: list[str]) -> None:
    """``--layer a --layer b`` on a one-value option: click keeps the last silently; refuse instead.

    Options declared ``multiple`` (``--model`` of compare, ``--class`` of maximize...) and counters
    may repeat. Scans the raw arguments up to ``--``, skipping option values.
    """
    by_opt: dict[str, click.Option] = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for o in (*p.opts, *p.secondary_opts):
                by_opt[o] = p
    seen: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if tok == "--":
            break
        opt, eq, _ = tok.partition("=")
        p = by_opt.get(opt)
        if p is None:
            continue
        if not p.is_flag and not p.count and not eq:
            i += max(p.nargs, 1)  # its value(s), which may look like options ("--target -1")
        if p.multiple or p.count:
            continue
        seen.setdefault(p.name or opt, []).append(opt)
    for name, spelled in seen.items():
        if len(spelled) > 1:
            shown = " and ".join(dict.fromkeys(spelled)) if len(set(spelled)) > 1 else spelled[0]
            raise click.UsageError(f"{shown} given {len(spelled)} times; it takes one value (click would silently keep "
                                   "the last). Give it once.")


def _guarded(cmd: click.Command) -> click.Command:
    """Wrap a command's callback once with the checks every command shares (outputs never over inputs)."""
    import functools

    if getattr(cmd, "_cnnviz_guarded", False) or cmd.callback is None:
        return cmd
    inner = cmd.callback
    inputs = {p.name for p in cmd.params if p.name and (p.name in INPUT_PARAMS or isinstance(p.type, click.Path))}

    @functools.wraps(inner)
    def callback(*args, **params):  # noqa: ANN002, ANN003, ANN202
        _refuse_outputs_over_inputs(params, inputs - set(OUTPUT_PARAMS))
        try:
            return inner(*args, **params)
        except OSError as e:
            # A write that names no file (a full disk seen by tensorboard's writer, cv2's "could not
            # write"): name the output the user asked for, so the one line still says where.
            outs = [o for k in OUTPUT_PARAMS for o in _paths(params.get(k))]
            if e.filename is None and outs and not isinstance(e, BrokenPipeError):
                e.filename = outs[0]
            raise

    cmd.callback = callback
    cmd._cnnviz_guarded = True  # type: ignore[attr-defined]
    return cmd


def _paths(value: object) -> list[str]:
    vals = value if isinstance(value, (tuple, list)) else (value,)
    return [os.fspath(v) for v in vals if isinstance(v, (str, os.PathLike)) and str(v).strip()]


def _refuse_outputs_over_inputs(params: dict, inputs: set[str]) -> None:
    """Refuse an output path that is an input file, or lies inside an input folder (``inputs``: the
    names of the parameters that are read).

    ``activations photo.png --out photo.png`` would replace the photo; ``examples --data ds --out
    ds/train/a/x.png`` or ``train --data ds --out ds/train/new`` would add a picture or a whole class
    to the dataset; ``gradcam photos --out photos/cams`` would read its own overlays as inputs next time.
    """
    from cnnviz.errors import CnnvizError

    real = os.path.realpath
    outs = [(k, o) for k in OUTPUT_PARAMS for o in _paths(params.get(k))]
    if not outs:
        return
    ins = [(k, i) for k, v in params.items() if k in inputs for i in _paths(v) if os.path.exists(i)]
    for k, o in outs:
        flag = "--" + k.removesuffix("_png").replace("_", "-")
        ro = real(o)
        for ik, i in ins:
            ri = real(i)
            same = ro == ri or (os.path.exists(o) and os.path.samefile(o, i))
            if same:
                raise CnnvizError(f"{flag} '{o}' is also an input ('{i}'): cnnviz never writes over its inputs. "
                                  f"Choose another {flag}.")
            if ik not in SEARCH_PARAMS and os.path.isdir(ri) and ro.startswith(ri.rstrip(os.sep) + os.sep):
                raise CnnvizError(f"{flag} '{o}' is inside the input folder '{i}': what cnnviz writes there would be read "
                                  f"as input next time (images, or a class of the dataset). Choose a {flag} outside it.")


def _is_out_of_memory(e: RuntimeError) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` (CUDA/MPS) or a CPU allocator RuntimeError."""
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text.lower()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


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
