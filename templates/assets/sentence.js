// The sentence page: pick a head in the grid or with the arrow keys; the URL hash (#L9-H6)
// follows the choice, so a link can open the page with a head selected.
"use strict";
(function () {
  function init() {
    const section = document.querySelector(".sentence-views");
    if (!section) return;
    const key = section.dataset.key;
    const sentence = window.AtlasData.get(key);
    const big = document.getElementById("selected-heatmap");
    const title = document.getElementById("selected-title");
    const link = document.getElementById("selected-link");
    const thumbs = [...document.querySelectorAll("#head-grid canvas")];
    let current = { layer: 1, head: 1 };

    function select(layer, head, updateHash = true) {
      layer = Math.min(Math.max(1, layer), sentence.layers);
      head = Math.min(Math.max(1, head), sentence.heads);
      current = { layer, head };
      const name = window.AtlasData.headName(layer, head);
      window.AtlasHeatmap.draw(big, key, layer, head);
      title.textContent = name;
      link.href = `../heads/${window.AtlasData.headSlug(layer, head)}.html`;
      link.textContent = `Open ${name}'s page`;
      for (const t of thumbs) {
        t.classList.toggle("active", Number(t.dataset.layer) === layer && Number(t.dataset.head) === head);
      }
      if (updateHash && location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    }

    for (const t of thumbs) {
      t.addEventListener("click", () => select(Number(t.dataset.layer), Number(t.dataset.head)));
    }
    document.addEventListener("keydown", (event) => {
      if (event.target.closest && event.target.closest("input, textarea, select")) return;
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      const move = moves[event.key];
      if (!move) return;
      event.preventDefault();
      select(current.layer + move[0], current.head + move[1]);
    });
    window.addEventListener("hashchange", () => {
      const h = window.AtlasData.parseHead(location.hash);
      if (h) select(h.layer, h.head, false);
    });
    const start = window.AtlasData.parseHead(location.hash) || { layer: 1, head: 1 };
    select(start.layer, start.head, Boolean(window.AtlasData.parseHead(location.hash)));
  }
  document.addEventListener("DOMContentLoaded", init);
})();
