"""The explainer registry: every method once, one error class for names and options, one result type."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.explain.methods import REGISTRY, Explainer, check_options, describe_methods, explain, get_method, method_names
from cnnviz.explain.result import Explanation, MethodError


def test_every_method_is_registered_once_with_its_kind():
    from cnnviz.explain.attribute import ATTRIBUTION_METHODS
    from cnnviz.explain.cam import GRADIENT_METHODS, LIBRARY_METHODS, METHODS

    names = method_names()
    assert len(names) == len(set(names)) == 20
    assert set(GRADIENT_METHODS) == set(method_names(["cam"])) and len(GRADIENT_METHODS) == 6
    assert set(LIBRARY_METHODS) == set(method_names(["library-cam"]))
    assert set(METHODS) == set(GRADIENT_METHODS) | set(LIBRARY_METHODS)
    assert set(ATTRIBUTION_METHODS) == set(method_names(["attribution"])) and len(ATTRIBUTION_METHODS) == 7
    assert method_names(["baseline"]) == ["random"]
    for row in describe_methods():
        spec = REGISTRY[row["name"]]
        assert row["kind"] == spec.kind and row["summary"] and row["cost"]
        assert spec.signed == (spec.kind == "attribution")  # captum's methods carry raw attributions
        assert spec.layer == (spec.kind in ("cam", "library-cam") or spec.name == "guided-gradcam")


def test_unknown_names_one_error_with_a_suggestion():
    with pytest.raises(MethodError, match="Did you mean: gradcam") as e:
        get_method("gradcamm")
    assert "\n" not in str(e.value)
    with pytest.raises(MethodError, match="attribution method .*cnnviz attribute --method saliency"):
        get_method("saliency", ["cam", "library-cam"])
    with pytest.raises(MethodError, match="Choose from: saliency"):
        get_method("zzz", ["attribution"])
    # the old entry points raise the same class
    from cnnviz.explain.attribute import AttributionError, Attributor
    from cnnviz.explain.cam import compute_cams

    assert AttributionError is MethodError
    with pytest.raises(MethodError):
        compute_cams(torch.nn.Linear(2, 2), torch.zeros(1, 3, 4, 4), method="salency")
    with pytest.raises(MethodError):
        Attributor(torch.nn.Linear(2, 2), "gradcam")


def test_options_are_checked_not_dropped():
    ig = get_method("integrated-gradients")
    assert check_options(ig, {"n_steps": 8}) == {"n_steps": 8, "internal_batch_size": 16}
    with pytest.raises(MethodError, match="does not take nt_samples .*n_steps, internal_batch_size"):
        check_options(ig, {"nt_samples": 3})
    with pytest.raises(MethodError, match="takes no options"):
        check_options(get_method("gradcam"), {"n_steps": 3})
    for bad in (0, -1, 2.5, True):
        with pytest.raises(MethodError, match="whole number"):
            check_options(ig, {"n_steps": bad})


def test_explain_a_tensor_and_images(tiny_cnn, rgb_image):
    model, info = tiny_cnn
    x = torch.randn(2, 3, 32, 32)
    e = explain(model, x, "gradcam", info=info)
    assert isinstance(e, Explanation) and e.maps.shape == (2, 32, 32) and e.maps.dtype == np.float32
    assert e.layer == "features" and e.raw is None and e.image_sizes is None
    assert e.targets == e.probs.argmax(1).tolist() and e.target_names == [f"class_{t}" for t in e.targets]
    assert np.allclose(e.scores, e.probs.max(1))
    # an (H, W, 3) image: maps at the image's size; a list of same-size images; class by name
    one = explain(model, rgb_image, "gradcam", info=info, target="class_3")
    assert one.maps.shape == (1, 48, 64) and one.targets == [3] and one.image_sizes == [(48, 64)]
    assert 0 <= one.maps.min() and one.maps.max() <= 1
    two = explain(model, [rgb_image, rgb_image[::-1]], "layercam", info=info, target=[1, 2])
    assert two.maps.shape == (2, 48, 64) and two.targets == [1, 2]
    # images of different sizes: maps stay at the model's size, each available at its image's size
    mixed = explain(model, [rgb_image, rgb_image[:20, :30]], "gradcam", info=info)
    assert mixed.maps.shape == (2, 32, 32) and mixed.map_at_image(1).shape == (20, 30)
    with pytest.raises(MethodError, match="needs info="):
        explain(model, rgb_image, "gradcam")


def test_attribution_raw_and_random_baseline(tiny_cnn):
    model, info = tiny_cnn
    x = torch.randn(2, 3, 32, 32)
    e = explain(model, x, "saliency", info=info, target=4)
    assert e.raw.shape == (2, 3, 32, 32) and e.targets == [4, 4] and e.method == "saliency"
    r1, r2 = explain(model, x, "random", info=info), explain(model, x, "random", info=info, seed=1)
    assert r1.maps.shape == (2, 32, 32) and not np.allclose(r1.maps, r2.maps)
    assert np.array_equal(r1.maps, explain(model, x, "random", info=info).maps)  # seeded


def test_explainer_checks_layer_and_window_before_any_work(tiny_cnn):
    from cnnviz.errors import LayerError

    model, info = tiny_cnn
    for method in ("gradcam", "eigencam", "guided-gradcam"):
        with pytest.raises(LayerError, match="not a spatial map"):
            Explainer(model, method, info=info, layer="classifier")
    with pytest.raises(LayerError, match="no layer named"):
        Explainer(model, "gradcam", info=info, layer="featurez")
    with pytest.raises(MethodError, match="window 100000 is larger than the input side 32"):
        Explainer(model, "occlusion", info=info, window=100000)
    ex = Explainer(model, "occlusion", info=info, window=8)
    with pytest.raises(MethodError, match="larger than the input side 4"):
        ex(torch.randn(1, 3, 4, 4))


def test_explainer_reuses_one_working_copy(tiny_cnn):
    model, info = tiny_cnn
    ex = Explainer(model, "integrated-gradients", info=info, n_steps=4)
    copy = ex._attributor.model
    a = ex(torch.randn(1, 3, 32, 32))
    b = ex.attribute(torch.randn(1, 3, 32, 32), target=2)  # captum's spelling
    assert ex._attributor.model is copy and a.maps.shape == b.maps.shape == (1, 32, 32) and b.targets == [2]
    assert repr(ex).startswith("Explainer('integrated-gradients'") and "maps (1, 32, 32)" in repr(b)
