// The difference map of a compare atlas's sentence page: B − A of the selected head's attention
// (model B's attention of the sentence, data/NNNN.b.js, minus model A's), at the page's level.
// Orange: B attends more than A, blue: less, near white: the same (the contract's diverging
// scale, colour-blind safe); the scale is symmetric around
// 0 up to the largest |B − A| of the head (written into the caption and data-max). Drawn by
// AtlasHeatmap.drawLabelled (labels, hover values) from a bitmap of its own colours.
// AtlasDiffView.mount(canvas, a, b, state, signal) follows the shared selection and level.
"use strict";
(function () {
  /** B − A of two sentences at one level (same tokens), with the attention interface the
   * heatmap draws from: n, tokens, matrix(layer, head), value(layer, head, i, j). */
  function difference(a, b) {
    const n = a.n;
    const cache = new Map();
    const matrix = (layer, head) => {
      const key = `${layer}-${head}`;
      if (!cache.has(key)) {
        const ma = a.matrix(layer, head);
        const mb = b.matrix(layer, head);
        const d = new Float32Array(n * n);
        for (let i = 0; i < n * n; i++) d[i] = mb[i] - ma[i];
        cache.set(key, d);
      }
      return cache.get(key);
    };
    return {
      level: a.level, n, tokens: a.tokens, shown: a.shown, joins: a.joins, raw: a.raw, special: a.special, segments: a.segments,
      layers: a.layers, heads: a.heads, matrix,
      value: (layer, head, i, j) => matrix(layer, head)[i * n + j],
    };
  }

  /** The colour of t in -1..1: the contract's diverging scale (orange at 1, blue at -1). */
  let diverging = null;
  function colour(t) {
    if (!diverging) diverging = window.AtlasData.colourScale("diverging");
    return diverging(t);
  }

  /** A canvas of n × n pixels holding the difference's colours, and its largest |value|. */
  function bitmapCanvas(d, n) {
    let top = 0;
    for (let i = 0; i < n * n; i++) top = Math.max(top, Math.abs(d[i]));
    const pixels = new ImageData(n, n);
    for (let i = 0; i < n * n; i++) pixels.data.set([...colour(top ? d[i] / top : 0), 255], i * 4);
    const scratch = document.createElement("canvas");
    scratch.width = n;
    scratch.height = n;
    scratch.getContext("2d").putImageData(pixels, 0, 0);
    return { scratch, top };
  }

  /** Draws B − A of one head into canvas; returns the largest |B − A|. */
  function draw(canvas, a, b, layer, head, options = {}) {
    const diff = difference(a.at(options.level || "words"), b.at(options.level || "words"));
    const { scratch, top } = bitmapCanvas(diff.matrix(layer, head), diff.n);
    const { labelWidth, cell } = window.AtlasHeatmap.drawLabelled(canvas, diff, layer, head, { ...options, source: scratch });
    // Where the cells are (CSS pixels), and the scale: for whoever reads the map back.
    Object.assign(canvas.dataset, { layer, head, level: diff.level, max: top.toFixed(6), labelWidth, cell });
    const name = window.AtlasData.headName(layer, head);
    canvas.setAttribute("aria-label", `attention of ${name} in model B minus model A`);
    return top;
  }

  /** Shows the panel and redraws on every change of selection or level, until signal aborts. */
  function mount(canvas, a, b, state, signal) {
    const panel = canvas.closest("[hidden]") || canvas.parentElement;
    panel.hidden = false;
    const caption = document.getElementById("diff-caption");
    const redraw = () => {
      const { layer, head } = state.get();
      const width = Math.max(320, canvas.parentElement.clientWidth);
      const top = draw(canvas, a, b, layer, head, { size: 560, width, level: state.level() });
      if (caption) {
        caption.textContent = `${window.AtlasData.headName(layer, head)}, model B minus model A: orange where B attends more, `
          + `blue where it attends less; darkest at ±${top.toFixed(3)}.`;
      }
    };
    window.AtlasViews.follow(state, redraw, signal);
    window.AtlasViews.followLevel(state, redraw, signal);
    redraw();
  }

  window.AtlasDiffView = { mount, draw, difference };
})();
