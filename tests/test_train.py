"""cnnviz.train: modes, feature cache, resume, divergence, metrics, sweep (tiny simplecnn on 28 px Fashion-MNIST)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.train import TrainConfig, TrainError, evaluate_model, run_sweep, train_run

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
TINY = "simplecnn:width=4,depth=2"


def tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(data="fashion-mnist", model=TINY, mode="scratch", epochs=2, limit=160, eval_limit=80, batch_size=32,
                device="cpu", out=str(out), tensorboard=False, lr=3e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory):
    """A finished tiny scratch run (also the 'pretrained' start for lp/ft tests)."""
    out = tmp_path_factory.mktemp("runs") / "scratch"
    m = train_run(tiny_cfg(out, epochs=3, tensorboard=True), progress=False)
    return out, m


def _state(path: Path) -> dict[str, torch.Tensor]:
    from cnnviz.checkpoint import load_checkpoint

    return load_checkpoint(path)["state_dict"]


def test_scratch_run_writes_run_dir(scratch_run):
    from cnnviz.data import open_split
    from cnnviz.models import load_model

    out, m = scratch_run
    for name in ("ckpt.pt", "metrics.json", "confusion.png", "curves.png"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    disk = json.loads((out / "metrics.json").read_text())
    assert disk["test_accuracy"] == m["test_accuracy"] and disk["world_size"] == 1
    assert [h["epoch"] for h in disk["history"]] == [1, 2, 3]
    assert set(disk["history"][0]) >= {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert disk["history"][-1]["train_loss"] < disk["history"][0]["train_loss"]  # it learns something
    assert set(disk["per_class"]["Trouser"]) == {"precision", "recall", "f1", "support"}
    assert np.asarray(disk["confusion"]).sum() == disk["num_test_images"] == 80
    model, info = load_model(str(out / "ckpt.pt"))
    assert info.mode == "scratch" and info.class_names[0] == "T-shirt/top" and info.input_size == (1, 28, 28)
    assert info.metrics["test_accuracy"] == m["test_accuracy"] and info.config["limit"] == 160
    # the training images' mean (Fashion-MNIST: dark, about 0.29), where class images start from
    train_ds = open_split("fashion-mnist", "train", limit=160, seed=0)
    want = np.mean([train_ds.array(i).mean() for i in range(len(train_ds))]) / 255
    assert len(info.pixel_mean) == 1 and info.pixel_mean[0] == pytest.approx(want, abs=1e-6) and 0.2 < want < 0.4
    # ... and their mean image at the input size: a garment silhouette, bright in the middle, black at the corners
    want_img = np.mean([train_ds.array(i) for i in range(len(train_ds))], axis=0) / 255
    assert info.mean_image.shape == (1, 28, 28) and np.allclose(info.mean_image[0], want_img, atol=1e-5)
    assert info.mean_image[0, 10:18, 10:18].mean() > 0.4 > 0.05 > info.mean_image[0, :3, :3].mean()
    # the checkpoint scores the same on the same evaluation images
    ev = evaluate_model(model, info, open_split("fashion-mnist", "test", limit=80, seed=0))
    assert ev["accuracy"] == pytest.approx(m["test_accuracy"]) and ev["confusion"] == disk["confusion"]


def test_lp_freezes_backbone_and_bn_stats(scratch_run, tmp_path):
    src, _ = scratch_run
    out = tmp_path / "lp"
    m = train_run(tiny_cfg(out, model=str(src / "ckpt.pt"), mode="lp", epochs=2), progress=False)
    before, after = _state(src / "ckpt.pt"), _state(out / "ckpt.pt")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.2.weight", "classifier.2.bias"}  # BN running stats included in the unchanged rest
    assert [h["phase"] for h in m["history"]] == ["lp", "lp"]


def test_lp_feature_cache_matches_frozen_forward(scratch_run, tmp_path):
    src, _ = scratch_run
    a = train_run(tiny_cfg(tmp_path / "a", model=str(src / "ckpt.pt"), mode="lp", epochs=2), progress=False)
    b = train_run(tiny_cfg(tmp_path / "b", model=str(src / "ckpt.pt"), mode="lp", epochs=2, cache_features=False), progress=False)
    sa, sb = _state(tmp_path / "a" / "ckpt.pt"), _state(tmp_path / "b" / "ckpt.pt")
    assert torch.allclose(sa["classifier.2.weight"], sb["classifier.2.weight"], atol=1e-5)
    assert a["history"][-1]["train_loss"] == pytest.approx(b["history"][-1]["train_loss"], rel=1e-4)


def test_lpft_probes_then_finetunes(scratch_run, tmp_path):
    src, _ = scratch_run
    out = tmp_path / "lpft"
    m = train_run(tiny_cfg(out, model=str(src / "ckpt.pt"), mode="lpft", epochs=3, lp_epochs=1, backbone_lr_scale=0.5), progress=False)
    assert [h["phase"] for h in m["history"]] == ["lp", "train", "train"]
    assert m["history"][1]["lr"] == pytest.approx(3e-3)  # the FT phase starts its own schedule at --lr
    before, after = _state(src / "ckpt.pt"), _state(out / "ckpt.pt")
    assert not torch.equal(before["features.0.weight"], after["features.0.weight"])


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    kw = dict(epochs=3, augment="basic", scheduler="onecycle")  # augmentation + dropout draw from the RNG
    full = train_run(tiny_cfg(tmp_path / "full", **kw), progress=False)
    part = train_run(tiny_cfg(tmp_path / "part", stop_after=1, **kw), progress=False)
    assert part == {"stopped_after": 1, "history": part["history"]} and not (tmp_path / "part" / "metrics.json").exists()
    resumed = train_run(tiny_cfg(tmp_path / "part", resume=True, **kw), progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for h1, h2 in zip(full["history"], resumed["history"]):
        assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-5)
        assert h1["val_accuracy"] == h2["val_accuracy"]
    sf, sr = _state(tmp_path / "full" / "ckpt.pt"), _state(tmp_path / "part" / "ckpt.pt")
    assert all(torch.allclose(sf[k].float(), sr[k].float(), atol=1e-5) for k in sf)


def test_resume_refuses_a_different_recipe(tmp_path):
    train_run(tiny_cfg(tmp_path / "r", epochs=2, stop_after=1), progress=False)
    with pytest.raises(TrainError, match="lr=0.003"):
        train_run(tiny_cfg(tmp_path / "r", epochs=2, resume=True, lr=0.1), progress=False)


def test_diverged_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.train import loop

    out = tmp_path / "nan"
    train_run(tiny_cfg(out, epochs=3, stop_after=1), progress=False)
    good = _state(out / "ckpt.pt")

    class NanLoss(torch.nn.Module):
        def forward(self, logits, y):
            return torch.nn.functional.cross_entropy(logits, y) * float("nan")

    monkeypatch.setattr(loop, "make_criterion", lambda cfg: NanLoss())
    with pytest.raises(TrainError, match=r"diverged.*epoch 2.*last good checkpoint \(epoch 1\)"):
        train_run(tiny_cfg(out, epochs=3, resume=True), progress=False)
    kept = load_checkpoint(out / "ckpt.pt")
    assert kept["train_state"]["epoch"] == 1 and all(torch.equal(good[k], kept["state_dict"][k]) for k in good)


def test_config_validation():
    with pytest.raises(TrainError, match="--mode"):
        TrainConfig(mode="probe").validate()
    with pytest.raises(TrainError, match="lpft needs"):
        TrainConfig(mode="lpft", epochs=1).validate()
    with pytest.raises(TrainError, match="--lp-epochs"):
        TrainConfig(mode="lpft", epochs=3, lp_epochs=3).validate()
    c = TrainConfig(mode="lpft", epochs=5)
    assert [c.phase(e) for e in range(5)] == ["lp", "lp", "train", "train", "train"]
    assert c.learning_rate("lp") == 1e-2 and c.learning_rate("train") == 1e-4 and c.freeze_bn
    assert not TrainConfig(mode="scratch").freeze_bn and TrainConfig(mode="scratch", bn="frozen").freeze_bn
    assert TrainConfig(mode="scratch").learning_rate("train") == 1e-3
    assert TrainConfig.from_dict({**c.to_dict(), "unknown": 1}) == c


def test_lp_on_simplecnn_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(TrainError, match="simplecnn has none"):
        train_run(tiny_cfg(tmp_path / "x", mode="lp"), progress=False)


def test_grayscale_feeds_rgb_pretrained_model_at_any_size():
    from cnnviz.data import eval_transform
    from cnnviz.train.modes import backbone_features, build_for_mode

    cfg = TrainConfig(model="efficientnet_lite0", mode="lpft", image_size=40)
    model, info = build_for_mode(cfg, [f"c{i}" for i in range(7)], data_chans=1, native=(28, 28))
    assert info.input_size == (3, 40, 40) and info.num_classes == 7 and info.weights == "pretrained"
    from PIL import Image

    x = eval_transform(info)(Image.new("L", (28, 28), 128)).unsqueeze(0)
    model.eval()
    assert tuple(model(x).shape) == (1, 7)
    assert backbone_features(model, x).shape[1] == model.num_features  # the head is restored afterwards
    assert model.get_submodule("classifier").out_features == 7


def test_default_image_size():
    """Without --image-size: ImageNet architectures see small images at MIN_TRANSFER_SIDE (the measured choice,
    docs/training.md), large ones at most at 224; simplecnn keeps the data's size; --image-size always wins."""
    from cnnviz.train.modes import MIN_TRANSFER_SIDE, build_for_mode, default_image_size

    cfg = TrainConfig(data="cifar10", model="efficientnet_lite0", mode="lpft")
    assert MIN_TRANSFER_SIDE == 128
    assert default_image_size(cfg, "efficientnet_lite0", (32, 32)) == 128  # CIFAR-10
    assert default_image_size(cfg, "timm:resnet18", (28, 28)) == 128  # Fashion-MNIST
    assert default_image_size(cfg, "efficientnet_lite0", (150, 200)) == 200 and default_image_size(cfg, "x", (600, 800)) == 224
    assert default_image_size(cfg, "simplecnn:width=8", (32, 32)) == 32
    assert default_image_size(dataclasses.replace(cfg, image_size=64), "efficientnet_lite0", (32, 32)) == 64
    _, info = build_for_mode(cfg, [f"c{i}" for i in range(10)], data_chans=3, native=(32, 32))
    assert info.input_size == (3, 128, 128)


def test_summarize_metrics():
    from cnnviz.train.metrics import confusion_matrix, summarize

    t = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 2, 2])
    c = confusion_matrix(t, p, 3)
    assert c.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    s = summarize(c, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(0.6667, abs=1e-4), "f1": 0.8, "support": 3}
    assert s["per_class"]["b"]["precision"] == 0.5 and s["per_class"]["c"]["recall"] == 1.0


def test_sweep_trains_each_setting_once(tmp_path):
    base = tiny_cfg(tmp_path, epochs=1)
    rows = run_sweep(base, [1e-3, 1e-2], out=tmp_path / "sw", progress=False)
    assert [r["lr"] for r in rows] == [1e-3, 1e-2]
    for f in ("summary.json", "summary.md", "sweep.png"):
        assert (tmp_path / "sw" / f).is_file()
    first = (tmp_path / "sw" / "simplecnn-width4-depth2-scratch-lr0.001" / "ckpt.pt").stat().st_mtime_ns
    again = run_sweep(dataclasses.replace(base), [1e-3], out=tmp_path / "sw", progress=False)
    assert (tmp_path / "sw" / "simplecnn-width4-depth2-scratch-lr0.001" / "ckpt.pt").stat().st_mtime_ns == first  # reused
    assert again[0]["test_accuracy"] == rows[0]["test_accuracy"]


@pytest.mark.slow
def test_lite0_lpft_end_to_end(tmp_path):
    """The bundled ImageNet Lite0, grayscale 28 px data at 64 px: the probe alone is far above chance."""
    m = train_run(TrainConfig(data="fashion-mnist", model="efficientnet_lite0", mode="lpft", epochs=2, limit=160, eval_limit=80,
                              batch_size=16, image_size=64, device="cpu", out=str(tmp_path / "lite0"), tensorboard=False), progress=False)
    assert [h["phase"] for h in m["history"]] == ["lp", "train"]
    assert m["history"][0]["val_accuracy"] > 0.35  # chance is 0.10; 10 probe steps on ImageNet features
    assert m["input_size"] == [3, 64, 64] and m["test_accuracy"] >= m["history"][0]["val_accuracy"] - 0.1  # FT keeps the probe's gains


def test_random_labels_permute_training_labels_only(tmp_path):
    """--random-labels (sanity checks, Adebayo et al. 2018): train labels shuffled by the seed, test labels real."""
    from cnnviz.train.loop import _open_splits

    cfg = tiny_cfg(tmp_path / "r", random_labels=True, epochs=2, stop_after=1)
    tr, te = _open_splits(cfg)
    real_tr, real_te = _open_splits(dataclasses.replace(cfg, random_labels=False))
    assert sorted(tr.targets) == sorted(real_tr.targets)  # a permutation: class counts unchanged
    assert np.mean(np.asarray(tr.targets) != np.asarray(real_tr.targets)) > 0.5
    assert te.targets == real_te.targets
    np.testing.assert_array_equal(tr.array(5), real_tr.array(5))  # same images, other labels
    assert _open_splits(cfg)[0].targets == tr.targets  # seeded
    m = train_run(cfg, progress=False)
    assert m["stopped_after"] == 1
    from cnnviz.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "r" / "ckpt.pt")
    assert ck["config"]["random_labels"] is True and ck["train_state"]["recipe"]["random_labels"] is True
    with pytest.raises(TrainError, match="random_labels=True"):
        train_run(dataclasses.replace(cfg, random_labels=False, resume=True, stop_after=None), progress=False)
    done = train_run(dataclasses.replace(cfg, resume=True, stop_after=None), progress=False)
    assert done["random_labels"] is True and done["config"]["random_labels"] is True
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["random_labels"] is True


def test_training_holds_uint8_images_at_their_own_size(tmp_path):
    """Memory bounded by a batch, not the split: the split stays uint8 at 28 px even when training at 96 px."""
    from cnnviz.device import resolve_device
    from cnnviz.train import distributed as D
    from cnnviz.train.loop import _open_splits, open_data
    from cnnviz.train.modes import build_for_mode

    ctx = D.DistContext(device=resolve_device("cpu"))
    held = {}
    for limit in (160, 320):
        cfg = tiny_cfg(tmp_path / "m", image_size=96, limit=limit)
        tr_ds, te_ds = _open_splits(cfg)
        _, info = build_for_mode(cfg, tr_ds.class_names, tr_ds.channels, tr_ds.image_size)
        data = open_data(cfg, info, ctx, tr_ds, te_ds)
        tensors = {k: v for k, v in vars(data.tr).items() if isinstance(v, torch.Tensor)}
        assert set(tensors) == {"held", "y"}  # nothing else of the split is kept
        assert data.tr.held.dtype == torch.uint8 and tuple(data.tr.held.shape) == (limit, 1, 28, 28)
        held[limit] = data.tr.held_bytes
        x, y, idx = next(data.tr.batches(list(range(limit)), True, _cpu_acc()))
        assert tuple(x.shape) == (32, 1, 96, 96) and x.dtype == torch.float32  # resized per batch
    assert held == {160: 160 * 28 * 28, 320: 320 * 28 * 28}
    # with augmentation nothing is held: images are read, augmented and resized per batch
    cfg = tiny_cfg(tmp_path / "a", image_size=96, augment="basic")
    tr_ds, te_ds = _open_splits(cfg)
    _, info = build_for_mode(cfg, tr_ds.class_names, tr_ds.channels, tr_ds.image_size)
    data = open_data(cfg, info, ctx, tr_ds, te_ds)
    assert data.tr.held is None and data.tr.held_bytes == 0
    x, _, _ = next(data.tr.batches(list(range(64)), True, _cpu_acc()))
    assert tuple(x.shape) == (32, 1, 96, 96)


def _cpu_acc():
    from cnnviz.train.loop import _Accel

    return _Accel(torch.device("cpu"), None, False, None)


def test_lp_feature_cache_is_n_by_d(scratch_run, tmp_path):
    src, _ = scratch_run
    m = train_run(tiny_cfg(tmp_path / "lp", model=str(src / "ckpt.pt"), mode="lp", epochs=1, image_size=40), progress=False)
    # 160 train + 80 test images: uint8 at 28 px, plus one feature vector (simplecnn width 4 depth 2: 8 floats) each
    assert m["held_data_bytes"] == 240 * 28 * 28 + 240 * 8 * 4
    assert m["input_size"] == [1, 40, 40]


def test_unfreeze_trains_only_the_last_stages(scratch_run, tmp_path):
    """--mode ft --unfreeze 1: the last stage and the head train; the first stage, BatchNorm statistics included, does not."""
    from cnnviz.models import load_model

    src, _ = scratch_run
    out = tmp_path / "uf"
    m = train_run(tiny_cfg(out, model=str(src / "ckpt.pt"), mode="ft", epochs=1, unfreeze=1, bn="train"), progress=False)
    before, after = _state(src / "ckpt.pt"), _state(out / "ckpt.pt")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    first_stage = {k for k in before if k.split(".")[0] == "features" and int(k.split(".")[1]) <= 6}
    assert changed and not changed & first_stage  # frozen, running stats too
    assert {"features.7.weight", "features.8.running_mean", "classifier.2.weight"} <= changed
    assert m["trainable"]["stages"] == ["features.7-11", "classifier.2"] and m["trainable"]["unfreeze"] == 1
    assert 0 < m["trainable"]["trainable_params"] < m["trainable"]["total_params"]
    _, info = load_model(str(out / "ckpt.pt"))
    assert info.config["unfreeze"] == 1 and info.metrics["trainable"]["stages"][-1] == "classifier.2"
    with pytest.raises(TrainError, match=r"--unfreeze 5: SimpleCNN has 2 stages before its head \(features.0-4, features.7-11\)"):
        train_run(tiny_cfg(tmp_path / "x", model=str(src / "ckpt.pt"), mode="ft", epochs=1, unfreeze=5), progress=False)
    with pytest.raises(TrainError, match="--mode ft or lpft"):
        TrainConfig(mode="lp", unfreeze=1).validate()


def test_unfreeze_on_timm_and_torchvision_stages():
    import torchvision

    from cnnviz.models import build_model
    from cnnviz.train.modes import set_train_mode, unfreeze

    lite, _ = build_model("efficientnet_lite0", num_classes=3)
    assert unfreeze(lite, last=2) == ["blocks.5", "blocks.6, conv_head, bn2", "classifier"]
    assert not lite.blocks[4][0].conv_pw.weight.requires_grad and lite.blocks[5][0].conv_pw.weight.requires_grad
    assert not lite.blocks[4].training and lite.blocks[5].training  # frozen stages stay in eval mode (BN stats fixed)
    res = torchvision.models.resnet18(num_classes=3)
    assert unfreeze(res, last=1) == ["layer4", "fc"]
    assert not res.layer3[0].bn1.training and res.layer4[0].bn1.training and res.fc.weight.requires_grad
    set_train_mode(res, freeze_bn=True)
    assert not res.layer4[0].bn1.training  # --bn frozen also fixes the trained stages' statistics


def test_probe_layer_checkpoint_loads_and_is_explainable(scratch_run, tmp_path):
    """--probe-layer: a linear probe on an earlier layer's pooled features; the checkpoint is a normal model."""
    from cnnviz.data import open_split
    from cnnviz.errors import LayerError
    from cnnviz.explain.cam import compute_cams
    from cnnviz.models import load_model
    from cnnviz.transforms import preprocess

    src, _ = scratch_run
    out = tmp_path / "pl"
    m = train_run(tiny_cfg(out, model=str(src / "ckpt.pt"), mode="lp", epochs=2, probe_layer="features.6"), progress=False)
    assert m["probe_layer"] == "features.6" and m["config"]["probe_layer"] == "features.6"
    model, info = load_model(str(out / "ckpt.pt"))
    assert info.arch_kwargs == {"width": 4, "depth": 2, "probe_layer": "features.6"}
    assert isinstance(model.features[7], torch.nn.Identity) and model.classifier[2].in_features == 4
    kept, trained = _state(src / "ckpt.pt"), _state(out / "ckpt.pt")
    assert all(torch.equal(kept[k], trained[k]) for k in trained if k.startswith("features."))  # the probe froze them
    ds = open_split("fashion-mnist", "test", limit=80, seed=0)
    assert evaluate_model(model, info, ds)["accuracy"] == pytest.approx(m["test_accuracy"])
    x = preprocess(ds[0][0], info)
    cams = compute_cams(model, x, layer="features.3", info=info)
    assert cams.maps.shape == (1, 28, 28) and np.isfinite(cams.maps).all()
    with pytest.raises(LayerError, match="cut only after a stage or a block"):
        train_run(tiny_cfg(tmp_path / "bad", model=str(src / "ckpt.pt"), mode="lp", epochs=1, probe_layer="classifier.2"), progress=False)


@pytest.mark.slow
def test_grad_checkpointing_changes_memory_not_results(tmp_path):
    """Pretrained FT keeps BatchNorm statistics fixed, so recomputing activations gives the same weights."""
    kw = dict(data="fashion-mnist", model="efficientnet_lite0", mode="ft", epochs=1, limit=64, eval_limit=32, batch_size=16,
              image_size=32, device="cpu", tensorboard=False, max_steps=2)
    a = train_run(TrainConfig(out=str(tmp_path / "a"), **kw), progress=False)
    b = train_run(TrainConfig(out=str(tmp_path / "b"), grad_checkpointing=True, **kw), progress=False)
    sa, sb = _state(tmp_path / "a" / "ckpt.pt"), _state(tmp_path / "b" / "ckpt.pt")
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5) for k in sa)
    assert a["history"][0]["train_loss"] == pytest.approx(b["history"][0]["train_loss"], rel=1e-5)
    assert b["config"]["grad_checkpointing"] is True


def test_folder_of_uniform_small_images_trains_simplecnn_at_its_own_size(tmp_path):
    """A folder whose images share one size reports it (like array datasets), so simplecnn trains 32-px photos at
    32 px, not at the 128-px fallback; mixed sizes keep the fallback; large uniform photos are capped at 128."""
    import numpy as np
    from PIL import Image

    from cnnviz.datasets.folders import open_folder
    from cnnviz.train.modes import default_image_size

    for cls in ("a", "b"):
        d = tmp_path / "u" / "train" / cls
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(d / f"{i}.png")
    uniform = open_folder(tmp_path / "u", "train")
    assert uniform.image_size == (32, 32)
    cfg = TrainConfig(data=str(tmp_path / "u"), model="simplecnn", mode="scratch")
    assert default_image_size(cfg, "simplecnn", uniform.image_size) == 32
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "u" / "train" / "a" / "odd.png")
    assert open_folder(tmp_path / "u", "train").image_size is None
    assert default_image_size(cfg, "simplecnn", (375, 500)) == 128
