"""cnnviz.transforms: one image -> tensor path, and every command feeds the model the same tensor for the same file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.transforms import Transform, TrainTransform, as_chw, prepare_batch, preprocess, to_tensor


def test_resize_is_pils_bilinear_filter_without_uint8_rounding(rgb_image):
    """torch's antialiased bilinear = PIL's BILINEAR resize; PIL rounds to uint8 after each of its two
    passes, so they are at most one level apart (and a quarter level on average)."""
    for size in ((20, 24), (96, 130), (48, 64)):
        ours = prepare_batch(as_chw(rgb_image)[None], size, 3, (0.0,) * 3, (1.0,) * 3)[0].permute(1, 2, 0).numpy()
        pil = np.asarray(Image.fromarray(rgb_image).resize(size[::-1], Image.BILINEAR)).astype(np.float32) / 255
        d = np.abs(ours - pil)
        assert d.max() <= 1 / 255 + 1e-6 and d.mean() < 0.35 / 255, size


def test_batch_rows_equal_single_images(rgb_image):
    rng = np.random.default_rng(1)
    imgs = [rgb_image, rng.integers(0, 256, rgb_image.shape, dtype=np.uint8), 255 - rgb_image]
    tf = Transform((40, 36), 3, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    batch = tf.batch(torch.stack([tf.sample(a) for a in imgs]))
    for k, a in enumerate(imgs):
        assert torch.equal(batch[k], tf(a)) and torch.equal(batch[k], preprocess_like(a, tf)[0])
    cl = tf.batch(torch.stack([tf.sample(a) for a in imgs]).contiguous(memory_format=torch.channels_last))
    assert torch.equal(cl, batch)


def preprocess_like(a, tf):
    return to_tensor(a, tf.mean, tf.std, tf.size)


def test_channels_gray_and_luminance(rgb_image):
    gray = rgb_image[..., 0]
    rgb_gray = np.repeat(gray[..., None], 3, axis=2)
    one = Transform((30, 30), 1, (0.5,), (0.25,))
    three = Transform((30, 30), 3, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(one(gray), one(rgb_gray))  # a gray RGB image gives its gray values back, exactly
    assert torch.equal(three(gray), three(rgb_gray))  # replication after resizing = resizing each copy
    # RGB -> luminance is PIL's convert("L"), then the same resize
    assert torch.equal(one(rgb_image), one(np.asarray(Image.fromarray(rgb_image).convert("L"))))
    # every input kind gives the same tensor
    for img in (Image.fromarray(rgb_image), torch.from_numpy(rgb_image).permute(2, 0, 1), rgb_image.astype(np.float32) / 255):
        assert torch.allclose(three(img), three(rgb_image), atol=1e-6)


def test_train_transform_augments_uint8_at_native_size(rgb_image):
    for preset in ("basic", "strong"):
        tf = TrainTransform(preset, (20, 24), 3, (0.5,) * 3, (0.25,) * 3)
        torch.manual_seed(0)
        s = tf.sample(rgb_image)
        assert s.dtype == torch.uint8 and tuple(s.shape) == (3, 48, 64)  # augmented before the resize
        assert not torch.equal(s, as_chw(rgb_image))
        assert tuple(tf.batch(s[None]).shape) == (1, 3, 20, 24)
    none = TrainTransform("none", (20, 24), 3, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(none(rgb_image), Transform((20, 24), 3, (0.5,) * 3, (0.25,) * 3)(rgb_image))


def test_bad_channel_requests_are_clear_errors():
    from cnnviz.errors import CnnvizError

    with pytest.raises(CnnvizError, match="mean/std"):
        prepare_batch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (4, 4), 3, (0.5,), (0.5,))
    with pytest.raises(CnnvizError, match="shape"):
        as_chw(np.zeros((4, 4, 5), np.uint8))


# --------------------------------------------------------------------------------------------
# every path, one tensor (issue 12)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A two-class folder of four photos (train/ and test/ hold the same JPEG files) and a tiny checkpoint."""
    from cnnviz.images import sample_image
    from cnnviz.models import build_model, save_model

    root = tmp_path_factory.mktemp("same") / "photos"
    files = []
    for split in ("train", "test"):
        for cls, name in (("cat", "chelsea"), ("cat", "astronaut"), ("cup", "coffee"), ("cup", "rocket")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            img = sample_image(name)[::3, ::3]  # 100x150 to 179x179: resized to 40x40 on the way in
            p = root / split / cls / f"{name}.jpg"
            Image.fromarray(np.ascontiguousarray(img)).save(p, quality=90)
            files.append(p)
    torch.manual_seed(0)
    model, info = build_model("simplecnn", num_classes=2, in_chans=3, arch_kwargs={"width": 4, "depth": 2}, input_size=(40, 40))
    info.class_names = ["cat", "cup"]
    ckpt = root.parent / "tiny.pt"
    save_model(ckpt, model, info)
    return root, files, ckpt


class Recorder:
    """Collects every input the model is called with (a forward pre-hook)."""

    def __init__(self) -> None:
        self.inputs: list[tuple[bool, torch.Tensor]] = []

    def attach(self, model: torch.nn.Module) -> torch.nn.Module:
        model.register_forward_pre_hook(lambda m, args: self.inputs.append((m.training, args[0].detach().clone())))
        return model

    def saw(self, expected: torch.Tensor, training: bool | None = None) -> bool:
        rows = [r for t, x in self.inputs if x.device.type != "meta" and (training is None or t == training) for r in x]
        return any(r.shape == expected.shape and torch.equal(r, expected) for r in rows)


@pytest.fixture
def recorder(monkeypatch):
    import cnnviz.models

    rec = Recorder()
    real = cnnviz.models.load_model

    def load_and_record(*a, **k):
        model, info = real(*a, **k)
        return rec.attach(model), info

    monkeypatch.setattr(cnnviz.models, "load_model", load_and_record)
    return rec


def test_every_path_feeds_the_same_tensor(world, recorder, monkeypatch, tmp_path):
    """training, evaluate, compare, examples, the CLI's preprocess (gradcam) and the gallery: identical inputs."""
    from click.testing import CliRunner

    from cnnviz.cli.main import cli
    from cnnviz.compare import compare_models
    from cnnviz.data import open_split
    from cnnviz.explain.examples import top_examples
    from cnnviz.images import load_image
    from cnnviz.models import load_model
    from cnnviz.train import TrainConfig, train_run
    from cnnviz.train import loop

    root, files, ckpt = world
    model, info = load_model(str(ckpt))
    expected = {p: preprocess(load_image(p), info)[0] for p in files}
    assert len({tuple(t.flatten()[:50].tolist()) for t in expected.values()}) == 4  # four different photos

    def check(what: str, split: str = "test", training: bool | None = None, clear: bool = True) -> None:
        missing = [p.name for p, t in expected.items() if p.parent.parent.name == split and not recorder.saw(t, training)]
        assert not missing, f"{what}: the model never saw the preprocess() tensor of {missing}"
        if clear:
            recorder.inputs.clear()

    # training (and its per-epoch evaluation): the trainer's model, recorded as it is built
    real_build = loop.build_for_mode
    monkeypatch.setattr(loop, "build_for_mode", lambda *a, **k: (lambda mi: (recorder.attach(mi[0]), mi[1]))(real_build(*a, **k)))
    train_run(TrainConfig(data=str(root), model=str(ckpt), mode="ft", epochs=1, batch_size=2, lr=1e-9, image_size=40,
                          device="cpu", out=str(tmp_path / "run"), tensorboard=False), progress=False)
    check("training pass", "train", training=True, clear=False)
    check("evaluation during training", "test", training=False)
    # evaluate (the CLI)
    r = CliRunner().invoke(cli, ["evaluate", "--model", str(ckpt), "--data", str(root), "--json"])
    assert r.exit_code == 0, r.output
    check("evaluate")
    # compare and examples (library calls the CLI commands make)
    ds = open_split(str(root), "test")
    m2, i2 = load_model(str(ckpt))
    compare_models([(model, info), (m2, i2)], ds, batch_size=4)
    check("compare")
    top_examples(recorder.attach(load_model(str(ckpt))[0]), info, ds, target_class=0, k=2)
    check("examples")
    # the CLI's preprocess: gradcam on the files
    r = CliRunner().invoke(cli, ["gradcam", *[str(p) for p in files if "test" in p.parts], "--model", str(ckpt),
                                 "--out", str(tmp_path / "cams")])
    assert r.exit_code == 0, r.output
    check("gradcam")
    # the gallery's per-image pages, on test images drawn from the dataset
    r = CliRunner().invoke(cli, ["gallery", "--model", str(ckpt), "--data", str(root), "--num-images", "4", "--cam", "gradcam",
                                 "--attribute", "", "--no-compare", "--maximize-steps", "1", "--max-classes", "1",
                                 "--out", str(tmp_path / "site"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    check("gallery")
