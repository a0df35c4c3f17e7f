// The sentence page controller: one shared selection (AtlasState) for every view; the URL hash
// (#L9-H6) follows it, so a link opens the page with a head selected; arrow keys move it.
// Mounts the head view, the model view and the neuron view, and keeps the labelled heatmap of
// the selected head (#selected-heatmap) in step.
"use strict";
(function () {
  function headLabels() {
    const script = document.getElementById("head-labels");
    try {
      return script ? JSON.parse(script.textContent) : {};
    } catch (err) {
      return {};
    }
  }

  function init() {
    const section = document.querySelector(".sentence-views");
    if (!section) return;
    const key = section.dataset.key;
    const sentence = window.AtlasData.get(key);
    const fromHash = window.AtlasData.parseHead(location.hash);
    const state = window.AtlasState.create(sentence.layers, sentence.heads, fromHash || { layer: 1, head: 1 });
    const labels = headLabels();

    const big = document.getElementById("selected-heatmap");
    const title = document.getElementById("selected-title");
    const badge = document.getElementById("selected-label");
    const link = document.getElementById("selected-link");

    function show({ layer, head }) {
      const name = window.AtlasData.headName(layer, head);
      window.AtlasHeatmap.draw(big, key, layer, head, { size: 560, width: Math.max(320, big.parentElement.clientWidth) });
      title.textContent = name;
      const label = labels[name];
      badge.hidden = !label;
      badge.textContent = label || "";
      badge.className = label ? `label label-${label.replace(/[[\]]/g, "").toLowerCase()}` : "label";
      link.href = `../heads/${window.AtlasData.headSlug(layer, head)}.html`;
      link.textContent = `Open ${name}'s page`;
    }

    const headView = document.getElementById("head-view");
    state.subscribe((selection, source) => {
      show(selection);
      const hash = `#${window.AtlasData.headName(selection.layer, selection.head)}`;
      if (source !== "hash" && location.hash !== hash) history.replaceState(null, "", hash);
      // A head picked in the model view opens in the head view: bring it into sight.
      if (source === "model-view" && headView) {
        const rect = headView.getBoundingClientRect();
        if (rect.top < 0 || rect.top > window.innerHeight * 0.6) {
          headView.parentElement.scrollIntoView({ behavior: "smooth", block: "start" });
        }
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.target.closest && event.target.closest("input, textarea, select")) return;
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      const move = moves[event.key];
      if (!move) return;
      event.preventDefault();
      const { layer, head } = state.get();
      state.select(layer + move[0], head + move[1], "keys");
    });
    window.addEventListener("hashchange", () => {
      const h = window.AtlasData.parseHead(location.hash);
      if (h) state.select(h.layer, h.head, "hash");
    });

    // Each view: one global with mount(container, sentence, state[, options]).
    const views = [
      ["head-view", window.AtlasHeadView, { allHeads: !fromHash }],
      ["model-view", window.AtlasModelView, { labels }],
      ["neuron-view", window.AtlasNeuronView, {}],
    ];
    for (const [id, view, options] of views) {
      const container = document.getElementById(id);
      if (!container || !view) continue;
      try {
        view.mount(container, sentence, state, options);
      } catch (err) {
        console.error(`${id}:`, err); // one broken view leaves the others working
      }
    }
    show(state.get());
  }
  document.addEventListener("DOMContentLoaded", init);
})();
