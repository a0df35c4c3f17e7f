// Draws every Vega-Lite chart on the page with the site's own vega bundle (window.vegaEmbed).
// A chart is <div class="vega" data-spec="ID"> plus <script type="application/json" id="ID">.
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

  function drawAll() {
    for (const el of document.querySelectorAll("div.vega[data-spec]")) {
      const source = document.getElementById(el.dataset.spec);
      if (!source) continue;
      const spec = JSON.parse(source.textContent);
      window.vegaEmbed(el, spec, options).then(
        () => el.classList.add("drawn"),
        (error) => {
          el.textContent = `Chart could not be drawn: ${error}`;
          console.error(error);
        },
      );
    }
  }
  document.addEventListener("DOMContentLoaded", drawAll);
})();
