// The overview's head map coloured by the layer or any catalogue column
// (templates/sections/head-map.html): choosing one draws the map again with that colour
// encoding, its legend and its tooltip, all made by atlas/charts.py (head_map_colours), and
// prints its range beside the control. The map's <div> says which colour it shows
// (data-colour) once drawn.
"use strict";
(function () {
  const byId = (id) => document.getElementById(id);

  /** The map's spec with ``colour`` in place of its colour, its tooltip naming the column. */
  function recoloured(spec, colour) {
    const encoding = { ...spec.encoding, color: colour.encoding };
    const tips = (spec.encoding.tooltip || []).filter((tip) => tip.field !== colour.tooltip.field);
    encoding.tooltip = [...tips.slice(0, 2), colour.tooltip, ...tips.slice(2)];
    return { ...spec, encoding };
  }

  function recolour(select, colours) {
    const el = document.querySelector(`div.vega[data-spec="${select.dataset.spec}"]`);
    const spec = JSON.parse(byId(select.dataset.spec).textContent);
    const colour = colours[select.value];
    byId(select.dataset.range).textContent = colour.range;
    window.AtlasCharts.draw(el, recoloured(spec, colour)).then((drawn) => {
      if (drawn && select.value === colour.key) el.dataset.colour = colour.key;
    });
  }

  function start() {
    for (const select of document.querySelectorAll("select[data-colours]")) {
      const colours = JSON.parse(byId(select.dataset.colours).textContent);
      for (const [key, colour] of Object.entries(colours)) colour.key = key;
      select.value = "layer";
      select.addEventListener("change", () => recolour(select, colours));
    }
  }
  document.addEventListener("DOMContentLoaded", start);
})();
