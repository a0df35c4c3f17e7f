// The neuron view (after BertViz, Vig 2019): how one head turns one query token's vector q and
// every token's key vector k_j into attention. For the selected layer and head and a chosen query
// token i it shows q, each k_j, the elementwise product q⊙k_j, the score q·k_j/√d (or as the model
// scores: its own scale, soft-cap; atlas/scores.py), the softmax over j (future keys masked for
// causal models, keys outside a sliding window for models that have one) and, beside it, the
// attention the model returned. The queries and keys are the model's own after its q/k norms and
// rotary position encoding, each query head paired with the key head it shares.
//
// AtlasNeuronView.mount(container, sentence, state) draws it into container and follows the
// shared selection (state); its own layer/head menus call state.select(..., "neuron-view").
// Needs views-common.js (AtlasViews) and atlas-data.js loaded first.
// For tests: container.dataset.{layer, head, query, maxDiff}; every key row carries
// data-index, data-score, data-softmax, data-attention and data-masked (why: "later", "window");
// AtlasNeuronView.rows(container) reads them back, AtlasNeuronView.compute(sentence, layer, head,
// query) is the arithmetic alone.
"use strict";
(function () {
  const SOURCE = "neuron-view";
  const VECTOR_WIDTH = 320; // CSS pixels for one vector's cells, whatever the head dimension

  /** Diverging colour for v in [-1, 1]: the contract's scale, blue negative, near white 0,
   * orange positive. */
  let divergingScale = null;
  function diverging(v) {
    if (!divergingScale) divergingScale = window.AtlasData.colourScale("diverging");
    return `rgb(${divergingScale(v).join(",")})`;
  }

  /** A number for display, never "-0.00". */
  function fixed(v, digits) {
    const text = v.toFixed(digits);
    return Number(text) === 0 ? (0).toFixed(digits) : text;
  }

  /** The colour scale of some vectors: the 98th percentile of |value|, so that a few outlier
   * dimensions do not wash out the rest (larger values are drawn at full colour). */
  function colourScale(arrays) {
    const all = [];
    for (const a of arrays) for (const v of a) all.push(Math.abs(v));
    all.sort((a, b) => a - b);
    const s = all[Math.min(all.length - 1, Math.floor(0.98 * all.length))];
    return s > 0 ? s : all[all.length - 1] || 1;
  }

  /** The arithmetic of one head for query token i (0-based), as the model does it
   * (atlas/scores.py): score_j = q·k_j × scale, soft-capped where the layer caps, keys after
   * the query (causal models) or outside the layer's sliding window masked; null without
   * vectors. masked[j]: "" (visible), "later" or "window". */
  function compute(sentence, layer, head, i) {
    const queries = sentence.queries(layer, head);
    const keys = sentence.keys(layer, head);
    if (!queries || !keys) return null;
    const n = sentence.n;
    const d = queries[0].length;
    const q = queries[i];
    const scoring = sentence.scoring(layer);
    const { scale, softcap } = scoring;
    const span = scoring.window;
    const products = [];
    const scores = new Float64Array(n);
    const masked = [];
    for (let j = 0; j < n; j++) {
      const p = new Float32Array(d);
      let dot = 0;
      for (let x = 0; x < d; x++) {
        p[x] = q[x] * keys[j][x];
        dot += q[x] * keys[j][x];
      }
      products.push(p);
      const score = dot * scale;
      scores[j] = softcap ? softcap * Math.tanh(score / softcap) : score;
      const later = sentence.causal && j > i;
      const outside = span != null && (sentence.causal ? j <= i - span : Math.abs(i - j) > span);
      masked.push(later ? "later" : outside ? "window" : "");
    }
    let top = -Infinity;
    for (let j = 0; j < n; j++) if (!masked[j]) top = Math.max(top, scores[j]);
    const probs = new Float64Array(n);
    let total = 0;
    for (let j = 0; j < n; j++) {
      probs[j] = masked[j] ? 0 : Math.exp(scores[j] - top);
      total += probs[j];
    }
    for (let j = 0; j < n; j++) probs[j] /= total;
    const matrix = sentence.matrix(layer, head);
    const attention = Array.from({ length: n }, (_, j) => matrix[i * n + j]);
    let maxDiff = 0;
    for (let j = 0; j < n; j++) maxDiff = Math.max(maxDiff, Math.abs(probs[j] - attention[j]));
    return { d, q, keys, products, scores, masked, probs, attention, maxDiff, scoring };
  }

  /** Whether the layer's scale is 1/√d (atlas.json keeps 6 decimals of it). */
  function plainScale(r) {
    return Math.abs(r.scoring.scale * Math.sqrt(r.d) - 1) < 1e-4;
  }

  /** The score's formula in words, e.g. "q·k_j/√d" or "5·tanh(q·k_j × 0.2500 / 5)". */
  function formula(r) {
    const { scale, softcap } = r.scoring;
    const plain = plainScale(r);
    const base = plain ? "q·k_j/√d" : `q·k_j × ${fixed(scale, 4)}`;
    return softcap ? `${softcap}·tanh(${base} / ${softcap})` : base;
  }

  const el = (...args) => window.AtlasViews.el(...args);

  /** One vector as a strip of coloured cells; title shows each value. */
  function strip(values, scale, cell, label) {
    const box = el("div", "nv-vec");
    box.style.setProperty("--nv-cell", `${cell}px`);
    values.forEach((v, x) => {
      const c = el("span", "nv-cell");
      c.style.background = diverging(v / scale);
      c.title = `${label}[${x}] = ${fixed(v, 3)}`;
      box.append(c);
    });
    return box;
  }

  function bar(value, className, title) {
    const wrap = el("div", `nv-bar ${className}`);
    wrap.title = title;
    const track = el("span", "nv-track");
    const fill = el("span", "nv-fill");
    fill.style.width = `${(Math.max(0, Math.min(1, value)) * 100).toFixed(1)}%`;
    track.append(fill);
    wrap.append(track, el("span", "nv-num", fixed(value, 3)));
    return wrap;
  }

  function swatch(scale, what) {
    const s = el("span", "nv-legend");
    s.append(el("span", "nv-legend-num", `−${fixed(scale, 2)}`));
    const g = el("span", "nv-gradient");
    g.style.background = `linear-gradient(to right, ${[-1, -0.5, 0, 0.5, 1].map(diverging).join(", ")})`;
    s.append(g, el("span", "nv-legend-num", `+${fixed(scale, 2)}`));
    s.append(el("span", "nv-legend-what", what));
    s.title = `near white = 0; values beyond ±${fixed(scale, 3)} are drawn at full colour; hover a cell for its value`;
    return s;
  }

  function select(label, count, value, onChange) {
    const wrap = el("label", "nv-control", `${label} `);
    const menu = el("select");
    menu.name = `nv-${label.toLowerCase()}`;
    for (let v = 1; v <= count; v++) {
      const option = el("option", "", String(v));
      option.value = String(v);
      menu.append(option);
    }
    menu.value = String(value);
    menu.addEventListener("change", () => onChange(Number(menu.value)));
    wrap.append(menu);
    return wrap;
  }

  function unavailable(container, note) {
    container.dataset.available = "false";
    const message = el("p", "nv-unavailable", `Neuron view not available: ${note}`);
    message.setAttribute("role", "note");
    container.replaceChildren(message);
  }

  /** Shows the view once the sentence's queries and keys are loaded (the vectors script).
   * Mounting again on the same container ends the previous mount (its state subscription). */
  function mount(container, sentence, state) {
    const signal = window.AtlasViews.remount(container);
    container.classList.add("neuron-view");
    if (!sentence.vectorsAvailable && !sentence.hasVectors) {
      unavailable(container, sentence.neuronNote || "this site was built without queries and keys");
      return;
    }
    container.dataset.available = "loading";
    container.replaceChildren(el("p", "hint", "Loading queries and keys…"));
    sentence.loadVectors().then(
      () => signal.aborted || show(container, sentence, state, signal),
      (error) => signal.aborted || unavailable(container, error.message),
    );
  }

  function show(container, sentence, state, signal) {
    performance.mark("atlas:neuron-view:start");
    container.replaceChildren();
    container.dataset.available = "true";
    const firstWord = sentence.special.findIndex((s) => !s);
    const nv = {
      container, sentence, state,
      // A decoder's first token can only attend to itself: start from its last token instead.
      query: sentence.causal ? sentence.n - 1 : firstWord >= 0 ? firstWord : 0,
      toolbar: el("div", "nv-toolbar"),
      intro: el("p", "hint nv-intro"),
      body: el("div", "nv-body"),
      legend: el("p", "nv-legends"),
      check: el("p", "hint nv-check"),
    };
    container.append(nv.toolbar, nv.intro, nv.legend, nv.body, nv.check);
    window.AtlasViews.follow(state, () => draw(nv), signal);
    draw(nv);
    performance.measure("atlas:neuron-view", "atlas:neuron-view:start");
  }

  // The functions below share one object, nv: {container, sentence, state, query (the query
  // token), toolbar, intro, body, legend, check (the view's parts)}; r is compute()'s result.

  /** Draws the selected head for the query token, keeping the scroll position and the focus
   * on the query token across redraws. */
  function draw(nv) {
    const { container, body } = nv;
    const { layer, head } = nv.state.get();
    const focused = document.activeElement;
    const focusToken = container.contains(focused) && focused.classList.contains("nv-token");
    const oldScroller = body.querySelector(".nv-scroll");
    const scrolled = oldScroller ? [oldScroller.scrollLeft, oldScroller.scrollTop] : [0, 0];
    const r = compute(nv.sentence, layer, head, nv.query);
    Object.assign(container.dataset, { layer, head, query: nv.query, maxDiff: r.maxDiff.toFixed(6) });
    drawToolbar(nv, layer, head, r);
    const scales = { q: colourScale([r.q]), k: colourScale(r.keys), product: colourScale(r.products) };
    const cell = Math.max(3, Math.min(10, Math.floor(VECTOR_WIDTH / r.d)));
    const scroller = el("div", "nv-scroll");
    scroller.append(table(nv, r, scales, cell));
    body.replaceChildren(scroller);
    [scroller.scrollLeft, scroller.scrollTop] = scrolled;
    drawLegend(nv, r, scales);
    if (focusToken) {
      const again = container.querySelector(`button.nv-token[data-index="${nv.query}"]`);
      if (again) again.focus();
    }
  }

  /** The layer and head menus (through the shared state), the head and query, the intro. */
  function drawToolbar(nv, layer, head, r) {
    const { sentence, state } = nv;
    const name = window.AtlasData.headName(layer, head);
    nv.toolbar.replaceChildren(
      select("Layer", sentence.layers, layer, (v) => state.select(v, state.get().head, SOURCE)),
      select("Head", sentence.heads, head, (v) => state.select(state.get().layer, v, SOURCE)),
      el("span", "nv-current", `${name} · query `),
    );
    nv.toolbar.lastChild.append(window.AtlasViews.tokenText(el("b", "nv-query-name"), sentence, nv.query));
    const { scale, softcap } = r.scoring;
    const span = r.scoring.window;
    const plain = plainScale(r);
    const masks = [];
    if (sentence.causal) masks.push("keys after the query (the model is causal)");
    if (span != null) masks.push(`keys outside layer ${layer}'s sliding window of ${span} tokens`);
    nv.intro.textContent =
      `Click a token to make it the query. For query token i, head ${name} scores every key ` +
      `token j by ${formula(r)} (d = ${r.d}` +
      (plain ? "" : `; the model's scale ${fixed(scale, 4)} instead of 1/√d = ${fixed(1 / Math.sqrt(r.d), 4)}`) +
      (softcap ? `; the model soft-caps its scores at ±${softcap}` : "") +
      `) and turns the scores into attention with a softmax` +
      (masks.length ? `; ${masks.join(" and ")} are masked out.` : ".");
  }

  function drawLegend(nv, r, scales) {
    nv.legend.replaceChildren(
      swatch(scales.q, "q"),
      swatch(scales.k, "k"),
      swatch(scales.product, "q ⊙ k"),
      el("span", "nv-legend-note", "near white = 0; larger values at full colour; hover a cell for its value"),
    );
    nv.check.textContent =
      `Largest difference between this softmax and the model's attention for this query: ` +
      `${fixed(r.maxDiff, 4)} (both are stored rounded, so they differ slightly).`;
  }

  /** Column headings, then the query's row with q itself. */
  function tableHead(nv, r, scales, cell) {
    const columns = el("tr");
    for (const [text, cls] of [
      ["token", "nv-h-token"],
      ["key vector k_j", "nv-h-vec"],
      ["q ⊙ k_j", "nv-h-vec"],
      ["score", "nv-h-num"],
      ["softmax", "nv-h-bar"],
      ["model attention", "nv-h-bar"],
    ]) {
      const th = el("th", cls, text);
      th.scope = "col";
      columns.append(th);
    }
    const queryRow = el("tr", "nv-query-row");
    const qLabel = el("th", "nv-qlabel");
    qLabel.scope = "row";
    qLabel.append(el("span", "nv-q", "query q: "), window.AtlasViews.tokenText(el("span", "nv-qtok"), nv.sentence, nv.query));
    const qCells = el("td", "nv-vec-cell");
    qCells.append(strip(r.q, scales.q, cell, "q"));
    const qNote = el("td", "nv-qnote", `q × k_j, dimension by dimension; the score is ${formula(r)}, from their sum q·k_j`);
    qNote.colSpan = 4;
    queryRow.append(qLabel, qCells, qNote);
    const thead = el("thead");
    thead.append(columns, queryRow);
    return thead;
  }

  function table(nv, r, scales, cell) {
    const tbody = el("tbody");
    for (let j = 0; j < nv.sentence.n; j++) tbody.append(keyRow(nv, r, j, scales, cell));
    const out = el("table", "nv-table");
    out.append(tableHead(nv, r, scales, cell), tbody);
    return out;
  }

  /** The row header of key j: a button that makes it the query. */
  function tokenButton(nv, j) {
    const { sentence } = nv;
    const tokenCell = el("th", "nv-token-cell");
    tokenCell.scope = "row";
    const button = window.AtlasViews.tokenText(el("button", "nv-token"), sentence, j);
    button.type = "button";
    button.dataset.index = j;
    button.title = `${sentence.raw[j]} (token ${j + 1}): click to make it the query`;
    button.setAttribute("aria-pressed", String(j === nv.query));
    button.addEventListener("click", () => {
      nv.query = j;
      draw(nv);
    });
    tokenCell.append(button);
    return tokenCell;
  }

  /** The cells of key j: k_j, q⊙k_j, the score, the softmax and the model's attention. */
  function keyCells(nv, r, j, scales, cell) {
    const label = (i) => window.AtlasData.tokenLabel(nv.sentence, i);
    const vector = (values, scale, label) => {
      const td = el("td", "nv-vec-cell");
      td.append(strip(values, scale, cell, label));
      return td;
    };
    const dot = r.scores[j];
    const scoreCell = el("td", "nv-score", r.masked[j] ? "masked" : fixed(dot, 2));
    const why = r.masked[j] === "later" ? "comes after the query" : `is outside the sliding window of ${r.scoring.window} tokens`;
    scoreCell.title = r.masked[j]
      ? `key ${j + 1} ${why}: masked (−∞), probability 0`
      : `${formula(r).replaceAll("k_j", `k_${j}`)} = ${fixed(dot, 4)}`;
    const diff = Math.abs(r.probs[j] - r.attention[j]);
    const pair = `${label(nv.query)} → ${label(j)}`;
    const model = fixed(r.attention[j], 4);
    const softCell = el("td", "nv-bar-cell");
    softCell.append(bar(r.probs[j], "nv-soft",
      `${pair}: softmax ${fixed(r.probs[j], 4)} (model ${model}, difference ${fixed(diff, 4)})`));
    const modelCell = el("td", "nv-bar-cell");
    modelCell.append(bar(r.attention[j], "nv-model", `${pair}: model attention ${model}`));
    return [vector(r.keys[j], scales.k, `k_${j}`), vector(r.products[j], scales.product, `q⊙k_${j}`), scoreCell, softCell, modelCell];
  }

  /** Key j's row, carrying its numbers as data-* for tests (see rows()). */
  function keyRow(nv, r, j, scales, cell) {
    const { sentence } = nv;
    const row = el("tr", "nv-row");
    row.dataset.index = j;
    row.dataset.score = r.masked[j] ? "masked" : r.scores[j].toFixed(6);
    row.dataset.masked = r.masked[j];
    row.dataset.softmax = r.probs[j].toFixed(6);
    row.dataset.attention = r.attention[j].toFixed(6);
    if (j === nv.query) row.classList.add("nv-self");
    if (r.masked[j]) row.classList.add("nv-masked");
    if (sentence.special[j]) row.classList.add("nv-special");
    else if (sentence.segments[j] === 1) row.classList.add("nv-seg-b");
    row.append(tokenButton(nv, j), ...keyCells(nv, r, j, scales, cell));
    return row;
  }

  /** The drawn key rows, for tests: [{index, token, score, softmax, attention, masked,
   * maskedBy}]. */
  function rows(container) {
    return [...container.querySelectorAll("tr.nv-row")].map((row) => ({
      index: Number(row.dataset.index),
      token: row.querySelector(".nv-token").textContent,
      score: row.dataset.score === "masked" ? null : Number(row.dataset.score),
      softmax: Number(row.dataset.softmax),
      attention: Number(row.dataset.attention),
      masked: row.classList.contains("nv-masked"),
      maskedBy: row.dataset.masked, // "", "later" (causal) or "window" (sliding window)
    }));
  }

  window.AtlasNeuronView = { mount, rows, compute, diverging };
})();
