/* cnnviz gallery controls: class filter, model toggles, overlay opacity. No dependencies.
   Data (class names, model ids) is only ever read through dataset/textContent, never parsed as HTML. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  var hiddenModels = {};
  var classWanted = "";

  function apply() {
    all("[data-class]").forEach(function (el) {
      el.hidden = classWanted !== "" && el.dataset.class !== classWanted;
    });
    all("[data-model]").forEach(function (el) {
      if (el.matches("[data-class]") && el.hidden) return;
      el.hidden = !!hiddenModels[el.dataset.model];
    });
    all("[data-empty]").forEach(function (el) {
      var grid = el.previousElementSibling;
      var shown = grid ? all("[data-class]", grid).filter(function (t) { return !t.hidden; }).length : 1;
      el.hidden = shown > 0;
    });
  }

  function init() {
    all("select[data-class-filter]").forEach(function (sel) {
      sel.addEventListener("change", function () { classWanted = sel.value; apply(); });
    });
    all("input[data-toggle-model]").forEach(function (box) {
      box.addEventListener("change", function () { hiddenModels[box.dataset.toggleModel] = !box.checked; apply(); });
    });
    all("input[data-opacity]").forEach(function (range) {
      var out = range.parentNode.querySelector("[data-opacity-value]");
      var set = function () {
        document.documentElement.style.setProperty("--overlay-opacity", String(range.value / 100));
        if (out) out.textContent = range.value + "%";
      };
      range.addEventListener("input", set);
      set();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
