// Head view: the attention of one layer as lines from each attending token (left column) to
// the tokens it attends to (right column), one colour per head, opacity and width by weight;
// bars beside the right column show the attention each token receives.
//   AtlasHeadView.mount(container, sentence, state, {allHeads}) -> handle
//   allHeads: start with every head of the layer shown (else the state's head alone).
//   handle: {lines(), importance(), view(), renderMs}; AtlasHeadView.of(container) -> handle.
// The state's head is the focused head (drawn on top, ringed swatch); a selection from
// elsewhere (model view, address, arrow keys) shows that layer with that head alone.
// Lines are drawn on one canvas, batched into one path per head and opacity step.
"use strict";
(function () {
  const LEVELS = 16; // opacity steps
  const GAMMA = 0.6; // opacity = weight^GAMMA: weights of 0.05-0.3 stay visible, order kept
  const THRESHOLDS = [0, 0.01, 0.02, 0.05, 0.1, 0.2];
  const FILTERS = [
    ["all", "all", null, null],
    ["AA", "A→A", 0, 0],
    ["AB", "A→B", 0, 1],
    ["BA", "B→A", 1, 0],
    ["BB", "B→B", 1, 1],
  ];
  const LINES_WIDTH = 240; // CSS pixels between the two token columns
  const BAR = 84; // CSS pixels of the largest importance bar
  const MULTI = "#6b7a99"; // bars and tints when several heads are shown
  const handles = new WeakMap();

  function rowHeight(n) {
    if (n <= 24) return 20;
    if (n <= 40) return 17;
    return Math.max(12, Math.min(15, Math.floor(760 / n)));
  }

  function mount(container, sentence, state, options = {}) {
    const { el, headColour, inkOn, tokenClass, isPair, range } = window.AtlasViews;
    const started = performance.now();
    performance.mark("atlas:head-view:start");
    let measured = false; // the first complete drawing is recorded as "atlas:head-view"
    const n = sentence.n;
    const rowH = rowHeight(n);
    const start = state.get();
    const view = {
      layer: start.layer,
      focus: start.head,
      shown: new Set(options.allHeads ? range(sentence.heads) : [start.head]),
      filter: "all",
      threshold: 0.02,
      hover: null, // {side: "from" | "to", index}
      pin: null,
    };

    // Matrices of the shown layer, decoded once per layer and head.
    const cache = { layer: 0, matrices: new Map() };
    function matrix(head) {
      if (cache.layer !== view.layer) {
        cache.layer = view.layer;
        cache.matrices = new Map();
      }
      if (!cache.matrices.has(head)) cache.matrices.set(head, sentence.matrix(view.layer, head));
      return cache.matrices.get(head);
    }

    // ---- the controls
    container.replaceChildren();
    container.classList.add("head-view");
    const controls = el("div", "hv-controls");
    const layerSelect = el("select");
    layerSelect.setAttribute("aria-label", "Layer");
    for (const l of range(sentence.layers)) {
      const option = el("option", "", `L${l}`);
      option.value = l;
      layerSelect.append(option);
    }
    const layerLabel = el("label", "hv-layer", "Layer ");
    layerLabel.append(layerSelect);
    controls.append(layerLabel);

    const filterButtons = new Map();
    if (isPair(sentence)) {
      const group = el("span", "hv-filter");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Segments");
      group.append(el("span", "caption-inline", "Segments "));
      for (const [key, text] of FILTERS) {
        const button = el("button", "", text);
        button.type = "button";
        button.dataset.filter = key;
        button.title = key === "all" ? "Every token" : `Only lines from segment ${key[0]} to segment ${key[1]} (special tokens left out)`;
        filterButtons.set(key, button);
        group.append(button);
      }
      controls.append(group);
    }

    const thresholdSelect = el("select");
    thresholdSelect.setAttribute("aria-label", "Hide lines below");
    for (const t of THRESHOLDS) {
      const option = el("option", "", t === 0 ? "none" : String(t));
      option.value = t;
      thresholdSelect.append(option);
    }
    thresholdSelect.value = String(view.threshold);
    const thresholdLabel = el("label", "hv-threshold", "Hide lines below ");
    thresholdLabel.append(thresholdSelect);
    controls.append(thresholdLabel);

    const swatches = el("div", "hv-swatches");
    swatches.setAttribute("role", "group");
    swatches.setAttribute("aria-label", "Heads");
    const swatchButtons = new Map();
    for (const h of range(sentence.heads)) {
      const button = el("button", "hv-swatch", `H${h}`);
      button.type = "button";
      button.dataset.head = h;
      button.style.setProperty("--head-colour", headColour(h));
      button.style.setProperty("--head-ink", inkOn(headColour(h)));
      button.title = `H${h}: click to show or hide, double-click to show alone`;
      swatchButtons.set(h, button);
      swatches.append(button);
    }
    for (const [action, text] of [["all", "all heads"], ["none", "none"]]) {
      const button = el("button", "hv-swatch-action", text);
      button.type = "button";
      button.dataset.action = action;
      swatches.append(button);
    }

    const status = el("p", "hv-status");
    status.setAttribute("aria-live", "polite");

    // ---- the token columns, the lines and the bars
    const body = el("div", "hv-body");
    body.style.setProperty("--row", `${rowH}px`);
    body.style.setProperty("--bar", `${BAR}px`);
    body.classList.toggle("hv-small", rowH < 15);
    function column(kind, caption) {
      const col = el("div", `hv-col hv-${kind}`);
      col.append(el("div", "hv-caption", caption));
      body.append(col);
      return col;
    }
    const fromCol = column("from", "from");
    const linesCol = column("lines", "");
    const toCol = column("to", "to");
    const barCol = column("bars", "received");
    const canvas = el("canvas", "hv-canvas");
    linesCol.append(canvas);
    const ctx = window.AtlasHeatmap.setSize(canvas, LINES_WIDTH, n * rowH);
    const fromTokens = [];
    const toTokens = [];
    const bars = [];
    for (let i = 0; i < n; i++) {
      const cls = tokenClass(sentence, i);
      for (const [col, list, side] of [[fromCol, fromTokens, "from"], [toCol, toTokens, "to"]]) {
        const token = el("div", `hv-token ${cls}`.trim(), sentence.tokens[i]);
        token.dataset.side = side;
        token.dataset.index = i;
        token.title = sentence.tokens[i];
        col.append(token);
        list.push(token);
      }
      const row = el("div", "hv-bar-row");
      row.dataset.side = "to";
      row.dataset.index = i;
      const bar = el("span", "hv-bar");
      bar.dataset.index = i;
      row.append(bar);
      barCol.append(row);
      bars.push(bar);
    }
    const header = el("div", "hv-top");
    header.append(controls, swatches, status);
    container.append(header, body);

    // A token's name for text: with its position (0-based) when the string occurs twice.
    const counts = new Map();
    for (const t of sentence.tokens) counts.set(t, (counts.get(t) || 0) + 1);
    const tokenName = (k) => (counts.get(sentence.tokens[k]) > 1 ? `${sentence.tokens[k]}#${k}` : sentence.tokens[k]);

    // ---- what is drawn
    const segmentsOf = () => {
      const f = FILTERS.find((x) => x[0] === view.filter);
      return [f[2], f[3]];
    };

    /** Calls fn(head, from, to, weight) for every line drawn, the focused head last. */
    function forEachLine(fn) {
      const token = view.hover || view.pin;
      const [fromSeg, toSeg] = segmentsOf();
      const rows = [];
      const cols = [];
      for (let i = 0; i < n; i++) {
        const seg = sentence.segments[i];
        if ((fromSeg === null || seg === fromSeg) && !(token && token.side === "from" && token.index !== i)) rows.push(i);
        if ((toSeg === null || seg === toSeg) && !(token && token.side === "to" && token.index !== i)) cols.push(i);
      }
      const order = [...view.shown].sort((a, b) => a - b).filter((h) => h !== view.focus);
      if (view.shown.has(view.focus)) order.push(view.focus);
      const t = view.threshold;
      for (const h of order) {
        const m = matrix(h);
        for (const i of rows) {
          const base = i * n;
          for (const j of cols) {
            const w = m[base + j];
            if (w > 0 && w >= t) fn(h, i, j, w);
          }
        }
      }
    }

    /** Attention each token receives: column sums over the query rows, summed over the shown
     * heads, special tokens left out (the segment filter applies to rows and columns). */
    function importance() {
      const [fromSeg, toSeg] = segmentsOf();
      const received = new Float64Array(n);
      for (const h of view.shown) {
        const m = matrix(h);
        for (let i = 0; i < n; i++) {
          if (fromSeg !== null && sentence.segments[i] !== fromSeg) continue;
          for (let j = 0; j < n; j++) received[j] += m[i * n + j];
        }
      }
      let total = 0;
      for (let j = 0; j < n; j++) {
        if (sentence.special[j] || (toSeg !== null && sentence.segments[j] !== toSeg)) received[j] = 0;
        total += received[j];
      }
      return { received, total };
    }

    const x0 = 2;
    const x1 = LINES_WIDTH - 2;
    // Line widths: one device pixel below half opacity, then wider. A canvas draws lines up to
    // one device pixel wide as hairlines, ten times faster than wider ones, and most are faint.
    const hairline = 1 / (window.devicePixelRatio || 1);
    const widths = range(LEVELS).map((level) => (level <= LEVELS / 2 ? hairline : 1 + (level - LEVELS / 2) * 0.25));

    function drawLines() {
      const t0 = performance.now();
      ctx.clearRect(0, 0, LINES_WIDTH, n * rowH);
      const token = view.hover || view.pin;
      const tint = new Float64Array(n);
      const top = [];
      let count = 0;
      let head = 0;
      const paths = new Array(LEVELS).fill(null);
      const stroke = (b) => {
        ctx.globalAlpha = (b + 1) / LEVELS;
        ctx.lineWidth = widths[b];
        ctx.stroke(paths[b]);
        paths[b] = null;
      };
      const flush = () => {
        for (let b = 0; b < LEVELS; b++) if (paths[b]) stroke(b);
      };
      forEachLine((h, i, j, w) => {
        if (h !== head) {
          flush();
          head = h;
          ctx.strokeStyle = headColour(h);
        }
        const b = Math.min(LEVELS - 1, Math.floor(Math.pow(w, GAMMA) * LEVELS));
        const path = paths[b] || (paths[b] = new Path2D());
        path.moveTo(x0, (i + 0.5) * rowH);
        path.lineTo(x1, (j + 0.5) * rowH);
        count++;
        if (token) {
          const other = token.side === "from" ? j : i; // the token at the far end
          tint[other] = Math.max(tint[other], w);
          top.push([w, h, other]);
        }
      });
      flush();
      ctx.globalAlpha = 1;

      // Tokens: the focused one marked, the far side tinted by the strongest head's weight.
      const tintColour = view.shown.size === 1 ? headColour([...view.shown][0]) : MULTI;
      const [fromSeg, toSeg] = segmentsOf();
      for (let i = 0; i < n; i++) {
        const seg = sentence.segments[i];
        for (const [tok, side, segment] of [[fromTokens[i], "from", fromSeg], [toTokens[i], "to", toSeg]]) {
          const isToken = token && token.side === side && token.index === i;
          tok.classList.toggle("focused", Boolean(isToken));
          tok.classList.toggle("pinned", Boolean(isToken && view.pin && !view.hover));
          tok.classList.toggle("dim", segment !== null && seg !== segment);
          const weight = token && token.side !== side ? tint[i] : 0;
          tok.style.setProperty("--tint", tintColour);
          tok.style.setProperty("--w", `${Math.round(Math.pow(Math.min(1, weight), GAMMA) * 70)}%`);
        }
      }

      if (token) {
        const word = tokenName(token.index);
        top.sort((a, b) => b[0] - a[0]);
        const multi = view.shown.size > 1;
        const parts = top.slice(0, 6).map(([w, h, k]) => `${tokenName(k)} ${w.toFixed(2)}${multi ? ` (H${h})` : ""}`);
        const verb = token.side === "from" ? "attends to" : "is attended by";
        const pinned = view.pin && !view.hover ? "pinned (Escape releases) · " : "";
        status.textContent = `${pinned}“${word}” ${verb}: ${parts.join(" · ") || "nothing above the threshold"}`;
      } else {
        const shown = [...view.shown].sort((a, b) => a - b);
        const heads = shown.length === 0 ? "no head shown (click a swatch)"
          : shown.length === sentence.heads ? "all heads"
          : shown.map((h) => `H${h}`).join(" ");
        const hidden = view.threshold ? ` (weights below ${view.threshold} hidden)` : "";
        status.textContent = `L${view.layer} · ${heads} · ${count} lines${hidden} · hover a token to isolate its lines, click to pin`;
      }
      status.title = status.textContent;
      Object.assign(container.dataset, {
        lines: count,
        token: token ? `${token.side}:${token.index}` : "",
        pinned: view.pin ? `${view.pin.side}:${view.pin.index}` : "",
        linesMs: (performance.now() - t0).toFixed(1),
      });
      if (!measured) {
        measured = true;
        performance.measure("atlas:head-view", "atlas:head-view:start");
      }
    }

    function drawBars() {
      const { received, total } = importance();
      const max = Math.max(...received);
      const colour = view.shown.size === 1 ? headColour([...view.shown][0]) : MULTI;
      const heads = view.shown.size === 1 ? "this head" : `${view.shown.size} heads`;
      bars.forEach((bar, j) => {
        const value = received[j];
        const shown = value > 0;
        bar.hidden = !shown;
        bar.style.width = shown ? `${((value / max) * BAR).toFixed(2)}px` : "0px";
        bar.style.background = colour;
        bar.dataset.value = value.toFixed(6);
        bar.dataset.share = shown ? (value / total).toFixed(6) : "0";
        bar.parentElement.title = shown
          ? `“${tokenName(j)}” receives ${value.toFixed(3)} (${((100 * value) / total).toFixed(1)}% of the attention to non-special tokens, ${heads})`
          : "";
      });
    }

    function render() {
      const t0 = performance.now();
      layerSelect.value = String(view.layer);
      for (const [h, button] of swatchButtons) {
        button.setAttribute("aria-pressed", String(view.shown.has(h)));
        button.classList.toggle("focus", h === view.focus);
      }
      for (const [key, button] of filterButtons) button.setAttribute("aria-pressed", String(key === view.filter));
      drawBars();
      drawLines();
      Object.assign(container.dataset, {
        layer: view.layer,
        focus: view.focus,
        heads: [...view.shown].sort((a, b) => a - b).join(","),
        filter: view.filter,
        renderMs: (performance.now() - t0).toFixed(1),
      });
    }

    // ---- interaction
    const select = () => state.select(view.layer, view.focus, "head-view");
    layerSelect.addEventListener("change", () => {
      view.layer = Number(layerSelect.value);
      select();
      render();
    });
    thresholdSelect.addEventListener("change", () => {
      view.threshold = Number(thresholdSelect.value);
      drawLines();
    });
    for (const [key, button] of filterButtons) {
      button.addEventListener("click", () => {
        view.filter = key;
        render();
      });
    }
    swatches.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.action === "all") view.shown = new Set(range(sentence.heads));
      else if (button.dataset.action === "none") view.shown = new Set();
      else {
        const h = Number(button.dataset.head);
        if (view.shown.has(h)) {
          view.shown.delete(h);
          if (h === view.focus && view.shown.size) view.focus = Math.min(...view.shown);
        } else {
          view.shown.add(h);
          view.focus = h;
        }
      }
      select();
      render();
    });
    swatches.addEventListener("dblclick", (event) => {
      const button = event.target.closest("button[data-head]");
      if (!button) return;
      view.focus = Number(button.dataset.head);
      view.shown = new Set([view.focus]);
      select();
      render();
    });
    const tokenOf = (event) => {
      const target = event.target.closest && event.target.closest("[data-side]");
      return target ? { side: target.dataset.side, index: Number(target.dataset.index) } : null;
    };
    const same = (a, b) => (a && b ? a.side === b.side && a.index === b.index : a === b);
    function hover(token) {
      if (same(token, view.hover)) return;
      view.hover = token;
      drawLines();
    }
    body.addEventListener("mouseover", (event) => hover(tokenOf(event)));
    body.addEventListener("mouseleave", () => hover(null));
    body.addEventListener("click", (event) => {
      const token = tokenOf(event);
      if (!token) return;
      view.pin = same(token, view.pin) ? null : token;
      view.hover = null; // show the pin (or its release) at once
      drawLines();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && view.pin) {
        view.pin = null;
        drawLines();
      }
    });
    state.subscribe((selection, source) => {
      if (source === "head-view") return;
      view.layer = selection.layer;
      view.focus = selection.head;
      view.shown = new Set([selection.head]);
      render();
    });

    render();
    const handle = {
      renderMs: performance.now() - started,
      /** Every line drawn now: [head, from, to, weight]. */
      lines() {
        const out = [];
        forEachLine((h, i, j, w) => out.push([h, i, j, w]));
        return out;
      },
      importance() {
        const { received, total } = importance();
        return { received: [...received], total };
      },
      view: () => ({ ...view, shown: [...view.shown].sort((a, b) => a - b) }),
    };
    container.dataset.mountMs = handle.renderMs.toFixed(1);
    handles.set(container, handle);
    return handle;
  }

  window.AtlasHeadView = { mount, of: (container) => handles.get(container) };
})();
