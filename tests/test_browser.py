"""The gallery in a real headless Chromium (playwright): loads from file://, no broken image, no console
error, hostile class names are text, and the controls (class filter, model toggles, opacity) work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gallery_synth import HOSTILE, make_manifest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (install the Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from cnnviz.gallery import build_site

    root = tmp_path_factory.mktemp("gal")
    return build_site(make_manifest(root / "src", n_models=2, n_images=3, big=True), root / "site").parent


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, problems


def check_pages(browser, site: Path) -> None:
    """Every page of ``site``: loads, all images decode, no console error, no script ran from data."""
    pages = sorted(site.glob("*.html"))
    assert pages
    for path in pages:
        page, problems = _open(browser, path.as_uri())
        # lazy images below the fold load when asked: make every picture load, then check each decoded
        page.evaluate("() => Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))")
        broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))")
        assert broken == [], f"{path.name}: broken images {broken}"
        assert problems == [], f"{path.name}: {problems}"
        assert page.evaluate("() => document.querySelectorAll('script').length") == 1, f"{path.name}: injected script element"
        assert page.evaluate("() => document.documentElement.classList.contains('js')")
        page.close()


def test_every_page_loads_cleanly(browser, site):
    check_pages(browser, site)


def test_hostile_names_are_text(browser, site):
    page, problems = _open(browser, (site / "index.html").as_uri())
    body = page.inner_text("body")
    for name in HOSTILE:
        assert name in body  # shown literally...
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0  # ...never parsed
    opts = page.eval_on_selector_all("select[data-class-filter] option", "os => os.map(o => o.value)")
    assert set(HOSTILE) <= set(opts)
    assert problems == []
    page.close()


def test_class_filter_and_model_toggle(browser, site):
    page, problems = _open(browser, (site / "index.html").as_uri())
    tiles = "#main figure.tile[data-class]"
    assert page.locator(tiles).count() == 3
    page.select_option("select[data-class-filter]", HOSTILE[1])
    visible = page.eval_on_selector_all(tiles, "ts => ts.filter(t => !t.hidden).map(t => t.dataset.class)")
    assert visible == [HOSTILE[1]]
    page.select_option("select[data-class-filter]", "")
    assert page.locator(tiles + ":visible").count() == 3
    # keyboard: tab to the first model checkbox and toggle it with the space bar
    box = page.locator("input[data-toggle-model='m0']")
    box.focus()
    page.keyboard.press("Space")
    assert not box.is_checked()
    assert page.locator("#main [data-model='m0']:visible").count() == 0
    assert page.locator("#main [data-model='m1']:visible").count() > 0
    box.press("Space")
    assert page.locator("#main [data-model='m0']:visible").count() > 0
    assert problems == []
    page.close()


def test_opacity_slider_changes_overlays(browser, site):
    page, problems = _open(browser, (site / "image-img0.html").as_uri())
    heat = page.locator("img.heat").first
    assert float(heat.evaluate("e => getComputedStyle(e).opacity")) == pytest.approx(0.5)
    slider = page.locator("input[data-opacity]")
    slider.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")  # keyboard-accessible: 50 -> 70
    assert float(heat.evaluate("e => getComputedStyle(e).opacity")) == pytest.approx(0.7)
    assert page.inner_text("[data-opacity-value]") == "70%"
    slider.fill("0")
    assert float(heat.evaluate("e => getComputedStyle(e).opacity")) == pytest.approx(0.0)
    # model toggle on the image page hides that model's column in every method
    page.locator("input[data-toggle-model='m1']").uncheck()
    assert page.locator("figure.cam[data-model='m1']:visible").count() == 0
    assert page.locator("figure.cam[data-model='m0']:visible").count() == 2
    assert problems == []
    page.close()


def test_content_readable_without_javascript(browser, site):
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto((site / "image-img0.html").as_uri())
    assert page.locator("figure.cam:visible").count() == 4  # 2 models x 2 methods, all shown
    assert page.locator(".controls:visible").count() == 0  # controls need JS, so they hide
    page.goto((site / "index.html").as_uri())
    assert page.locator("article.card:visible").count() == 2
    ctx.close()


@pytest.fixture(scope="module")
def real_site(tmp_path_factory) -> Path:
    """A site from the real report: two tiny simplecnn checkpoints with hostile class names, two photos."""
    import numpy as np
    from PIL import Image

    from cnnviz.gallery import build_site
    from cnnviz.images import load_image
    from cnnviz.report import ImageRef, ModelSource, Report, ReportConfig
    from test_report import _ckpt

    root = tmp_path_factory.mktemp("realgal")
    ckpts = [_ckpt(root / "scratch.pt", 0, "scratch"), _ckpt(root / "lpft.pt", 1, "lpft")]
    rng = np.random.default_rng(3)
    refs = []
    for i in range(2):
        p = root / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(p)
        refs.append(ImageRef(p.name, lambda p=p: load_image(p), HOSTILE[i]))
    cfg = ReportConfig(maximize_steps=2, max_classes=3, top_channels=4, activation_images=1)
    manifest = Report(root / "cache", cfg).run([ModelSource(c) for c in ckpts], refs, title="tiny <real> gallery")
    return build_site(manifest, root / "site").parent


def test_real_report_site_loads_cleanly(browser, real_site):
    check_pages(browser, real_site)
    page, problems = _open(browser, (real_site / "model-m0.html").as_uri())
    body = page.inner_text("body")
    assert HOSTILE[0] in body and "Class-maximizing images" in body and "Filters: features.0" in body
    page.select_option("select[data-class-filter]", HOSTILE[0])
    shown = page.eval_on_selector_all("#sec-maximize figure.tile", "ts => ts.filter(t => !t.hidden).map(t => t.dataset.class)")
    assert shown == [HOSTILE[0]]
    assert problems == []
    page.close()


def test_image_page_strips_and_verdicts(browser, real_site):
    """The real report's image page: one strip per model (layers shallow to deep, over the photo, under the
    opacity slider and the model toggles) and a sanity verdict beside every method's map."""
    from test_report import _ckpt  # noqa: F401  (the site's models)

    page, problems = _open(browser, next(real_site.glob("image-*.html")).as_uri())
    strips = page.locator("section#strips div.strip")
    assert strips.count() == 2
    layers = page.eval_on_selector_all("div.strip[data-model='m0'] figcaption", "fs => fs.map(f => f.textContent.split(' · ')[0])")
    assert layers == ["features.2", "features.5", "features.6", "features.12", "features.13"]
    page.set_viewport_size({"width": 900, "height": 900})  # one row, shallow to deep, even where five do not fit
    tops = page.eval_on_selector_all("div.strip[data-model='m0'] figure", "fs => fs.map(f => Math.round(f.getBoundingClientRect().top))")
    assert len(set(tops)) == 1, tops
    page.set_viewport_size({"width": 1200, "height": 900})
    badges = page.locator("figure.cam .verdict")
    assert badges.count() == page.locator("figure.cam").count() == 4
    assert all(t.startswith("sanity: ") for t in badges.all_inner_texts())
    assert "re-initialized" in badges.first.get_attribute("title")
    heat = page.locator("div.strip img.heat").first
    page.locator("input[data-opacity]").fill("80")
    assert float(heat.evaluate("e => getComputedStyle(e).opacity")) == pytest.approx(0.8)
    page.locator("input[data-toggle-model='m1']").uncheck()
    assert page.locator("div.strip[data-model='m1']:visible").count() == 0 and page.locator("div.strip[data-model='m0']:visible").count() == 1
    assert problems == []
    page.close()
    page, problems = _open(browser, (real_site / "model-m0.html").as_uri())
    assert page.locator("#sec-sanity tbody tr").count() == 2 and problems == []
    page.close()
