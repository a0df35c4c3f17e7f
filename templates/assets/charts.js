// Draws every Vega-Lite chart on the page with the site's own vega bundle (window.vegaEmbed).
// A chart is <div class="vega" data-spec="ID"> plus <script type="application/json" id="ID">.
// AtlasCharts.draw(el, spec) draws a chart again with another spec (the head map's colours).
"use strict";
(function () {
  const options = {
    mode: "vega-lite",
    renderer: "svg",
    actions: { export: true, source: false, compiled: false, editor: false },
    // Clicking a point with an href opens it in this tab, like any other link of the site.
    loader: { target: "_self" },
    tooltip: { theme: "light" },
  };
  const views = new WeakMap(); // element -> its vega view, finalized before it is drawn again

  /** Draws ``spec`` into ``el``; resolves to true once drawn (false if it could not be). */
  function draw(el, spec) {
    if (views.has(el)) views.get(el).finalize();
    return window.vegaEmbed(el, spec, options).then(
      (result) => {
        views.set(el, result);
        label(el);
        el.classList.add("drawn");
        return true;
      },
      (error) => {
        el.textContent = `Chart could not be drawn: ${error}`;
        console.error(error);
        return false;
      },
    );
  }

  /** Names for assistive technology: the chart (its caption) and the export menu's button.
   * A chart's links (cells, points) are pointer-only; every page that has them also links
   * each head in text (the top-heads lists, the heads table). */
  function label(el) {
    const svg = el.querySelector("svg");
    if (svg) svg.setAttribute("aria-label", el.dataset.label || "chart");
    const summary = el.querySelector("details > summary");
    if (summary) summary.setAttribute("aria-label", "Chart actions: save as SVG or PNG");
  }

  function drawAll() {
    for (const el of document.querySelectorAll("div.vega[data-spec]")) {
      const source = document.getElementById(el.dataset.spec);
      if (source) draw(el, JSON.parse(source.textContent));
    }
  }
  window.AtlasCharts = { draw };
  document.addEventListener("DOMContentLoaded", drawAll);
})();
