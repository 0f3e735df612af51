"""The gallery manifest: one schema, written by ``cnnviz.report`` and read by ``cnnviz.gallery.build``.

A manifest is a JSON document (strict: no NaN/Infinity) describing models, images and a comparison;
picture paths in it are relative to the manifest's folder (or absolute). Its shape is exactly the
dataclasses below (JSON key ``class`` is the field ``cls``)::

    Manifest    {version: 1, title, generated, models: [ModelEntry], images: [ImageEntry],
                 comparison: Comparison | null, notes: [str]}
    ModelEntry  {id, name, arch, mode, weights, accuracy, train_seconds, num_classes, input_size: [int],
                 params, curves: path, confusion: path, per_class: [PerClass], sections: [Section]}
    PerClass    {name, precision, recall, f1, support}
    ImageEntry  {id, name, src: path, class, results: [Result]}
    Result      {model: ModelEntry.id, method, heat: path, overlay: path, pred, prob, target}
    Comparison  {headline: [str], sections: [Section]}
    Section     {id, title, note, items: [Item], table: Table | null, wide, pixelated, hero}
    Item        {src: path, caption, class}
    Table       {columns: [str], rows: [[str | number | bool | null]]}

Every key may be left out (its default is used) except that ``models`` must list at least one model.
Reading validates the whole document: an unknown key, a wrong type or another version is refused
with one line that names the place (``models[0].sections[2].items[1].src: expected text or null,
got a number``), never a ``KeyError`` later. Neither torch nor numpy is imported here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from cnnviz.errors import CnnvizError

MANIFEST_VERSION = 1

Cell = Union[str, int, float, bool, None]  # one table cell


class GalleryError(CnnvizError):
    """A manifest the gallery cannot render (missing file, bad JSON, wrong version or shape)."""


def _json_name(f: dataclasses.Field) -> str:
    return f.metadata.get("json", f.name)


@dataclass
class Item:
    """One picture of a section."""

    src: str | None = None
    caption: str | None = None
    cls: str | None = field(default=None, metadata={"json": "class"})  # the class it shows (class filter)


@dataclass
class Table:
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class Section:
    """A titled block of a model page or of the comparison: pictures and/or a table."""

    id: str | None = None
    title: str = ""
    note: str | None = None
    items: list[Item] = field(default_factory=list)
    table: Table | None = None
    wide: bool = False  # full-width pictures
    pixelated: bool = False  # nearest-neighbour upscaling (filters, tiny images)
    hero: bool = False  # the comparison picture shown on the index


@dataclass
class PerClass:
    name: str | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = None


@dataclass
class ModelEntry:
    id: str | None = None
    name: str | None = None
    arch: str | None = None
    mode: str | None = None
    weights: str | None = None
    accuracy: float | None = None  # in [0, 1]
    train_seconds: float | None = None
    num_classes: int | None = None
    input_size: list[int] = field(default_factory=list)
    params: int | None = None
    curves: str | None = None
    confusion: str | None = None
    per_class: list[PerClass] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


@dataclass
class Result:
    """One explanation of one image by one model."""

    model: str | None = None  # a ModelEntry.id
    method: str | None = None
    heat: str | None = None  # an opaque colour heatmap shown over the image
    overlay: str | None = None  # or a ready-made overlay
    pred: str | None = None
    prob: float | None = None
    target: str | None = None


@dataclass
class ImageEntry:
    id: str | None = None
    name: str | None = None
    src: str | None = None
    cls: str | None = field(default=None, metadata={"json": "class"})
    results: list[Result] = field(default_factory=list)


@dataclass
class Comparison:
    headline: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


@dataclass
class Manifest:
    version: int = MANIFEST_VERSION
    title: str = "cnnviz gallery"
    generated: str | None = None
    models: list[ModelEntry] = field(default_factory=list)
    images: list[ImageEntry] = field(default_factory=list)
    comparison: Comparison | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (field ``cls`` as key ``class``)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> Manifest:
        """Validate ``data`` (parsed JSON) against the schema; ``GalleryError`` names what is wrong."""
        if not isinstance(data, dict):
            raise GalleryError(f"{where}: expected a JSON object, got {_kind(data)}.")
        version = data.get("version", MANIFEST_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise GalleryError(f"{where}: version must be a whole number, got {_kind(version)}.")
        if version != MANIFEST_VERSION:
            newer = "newer than" if version > MANIFEST_VERSION else "older than"
            raise GalleryError(f"{where}: version {version} is {newer} the one this cnnviz reads ({MANIFEST_VERSION}); "
                               "rebuild it with this cnnviz (`cnnviz gallery`).")
        try:
            m = _convert(data, Manifest, "")
        except _Bad as e:
            raise GalleryError(f"{where}: {e.path}: {e.msg}") from None
        if not m.models:
            raise GalleryError(f"{where}: the manifest lists no models; a gallery needs at least one.")
        return m


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {_json_name(f): _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _kind(v: Any) -> str:
    """How a JSON value reads in a message."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, (int, float)):
        return f"a number ({v})"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"text ({s!r})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _describe(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "an object"
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(dict.fromkeys(parts)) + (" or null" if type(None) in typing.get_args(tp) else "")
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _fits(v: Any, tp: Any) -> bool:
    if tp is type(None):
        return v is None
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    return False


_HINTS: dict[type, dict[str, Any]] = {}


class _Bad(Exception):
    """Where (``models[0].name``) and what is wrong; ``Manifest.from_dict`` makes it one line."""

    def __init__(self, path: str, msg: str) -> None:
        super().__init__(f"{path}: {msg}")
        self.path, self.msg = path or "(top level)", msg


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(v: Any, tp: Any, where: str) -> Any:
    """``v`` (parsed JSON) as type ``tp`` -- a schema dataclass, ``list[X]``, a union or a scalar."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise _Bad(where, f"expected an object, got {_kind(v)}.")
        hints = _HINTS.setdefault(tp, typing.get_type_hints(tp))
        by_key = {_json_name(f): f for f in dataclasses.fields(tp)}
        unknown = [k for k in v if k not in by_key]
        if unknown:
            raise _Bad(where, f"unknown key {str(unknown[0])!r}; {tp.__name__} has {', '.join(by_key)}.")
        kw = {f.name: _convert(v[k], hints[f.name], _at(where, k)) for k, f in by_key.items() if k in v}
        return tp(**kw)
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(v, list):
            raise _Bad(where, f"expected a list, got {_kind(v)}.")
        (item,) = typing.get_args(tp)
        return [_convert(x, item, f"{where}[{i}]") for i, x in enumerate(v)]
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        for a in args:
            if _fits(v, a):
                return float(v) if a is float and not isinstance(v, float) else v
        structured = [a for a in args if dataclasses.is_dataclass(a)]
        if structured and isinstance(v, dict):
            return _convert(v, structured[0], where)
        raise _Bad(where, f"expected {_describe(tp)}, got {_kind(v)}.")
    if _fits(v, tp):
        return float(v) if tp is float else v
    raise _Bad(where, f"expected {_describe(tp)}, got {_kind(v)}.")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate the manifest at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GalleryError(f"manifest not found: '{p}'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GalleryError(f"cannot read manifest '{p}': {e}") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise GalleryError(f"manifest '{p}' is not valid JSON ({e.msg} at line {e.lineno}).") from None
    except (ValueError, RecursionError) as e:
        raise GalleryError(f"manifest '{p}' is not strict JSON ({e}).") from None
    return Manifest.from_dict(data, where=f"manifest '{p}'")


def write_manifest(m: Manifest, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` atomically as strict JSON (NaN/Infinity become null)."""
    from cnnviz.atomic import dumps_json, write_text

    write_text(path, dumps_json(m.to_dict(), indent=1))
    return Path(path)
