// Head view: the attention of one layer as lines from each attending token (left column) to
// the tokens it attends to (right column), one colour per head, opacity and width by weight;
// bars beside the right column show the attention each token receives along the lines drawn
// (so they follow the segment filter and the threshold), on one scale for every filter.
//   AtlasHeadView.mount(container, sentence, state, {allHeads}) -> handle
//   allHeads: start with every head of the layer shown (else, as the sentence page does, the
//   state's head alone: every head of a layer at once is thousands of lines).
//   handle: {lines(), importance(), view(), labels(), renderMs}; AtlasHeadView.of(container) -> handle.
// The state's head is the focused head (drawn on top, ringed swatch); a selection from
// elsewhere (model view, address, arrow keys) shows that layer with that head alone.
// Lines are drawn on one canvas, batched into one path per head and opacity step.
// Mounting again on the same container ends the previous mount (listeners, subscription).
// Rows are the units of the state's level (state.level()): words when the sentence's words are
// known and the level is "words", else tokens; a change of level rebuilds the columns.
//
// The functions below share one object, hv: {container, sentence, grid, state, view, ui, ...},
// where grid is the sentence at the shown level (sentence.at(level): n, tokens, segments,
// special, matrix()), view is what is shown (layer, heads, filter, threshold, hovered or pinned
// row) and ui holds the elements built by mount (the columns again on a change of level).
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
  const X0 = 2; // where lines start and end, CSS pixels into the canvas
  const X1 = LINES_WIDTH - 2;
  const handles = new WeakMap();

  function rowHeight(n) {
    if (n <= 24) return 20;
    if (n <= 40) return 17;
    return Math.max(12, Math.min(15, Math.floor(760 / n)));
  }

  // Line widths: one device pixel below half opacity, then wider. A canvas draws lines up to
  // one device pixel wide as hairlines, ten times faster than wider ones, and most are faint.
  function lineWidths() {
    const hairline = 1 / (window.devicePixelRatio || 1);
    return window.AtlasViews.range(LEVELS).map((level) => (level <= LEVELS / 2 ? hairline : 1 + (level - LEVELS / 2) * 0.25));
  }

  /** A token's name for text (AtlasData.tokenLabel): with its position (0-based) when the
   * name occurs twice. */
  function tokenNamer(sentence) {
    const tokens = sentence.tokens.map((_, i) => window.AtlasData.tokenLabel(sentence, i));
    const counts = new Map();
    for (const t of tokens) counts.set(t, (counts.get(t) || 0) + 1);
    return (k) => (counts.get(tokens[k]) > 1 ? `${tokens[k]}#${k}` : tokens[k]);
  }

  const sortedHeads = (view) => [...view.shown].sort((a, b) => a - b);
  const shownColour = (view) => (view.shown.size === 1 ? window.AtlasViews.headColour([...view.shown][0]) : MULTI);

  // ---- the controls

  /** A labelled <select> of values. */
  function menu(className, caption, ariaLabel, values, text) {
    const { el } = window.AtlasViews;
    const select = el("select");
    select.setAttribute("aria-label", ariaLabel);
    for (const v of values) {
      const option = el("option", "", text(v));
      option.value = v;
      select.append(option);
    }
    const label = el("label", className, caption);
    label.append(select);
    return { label, select };
  }

  /** The segment filter of a sentence pair: one button per FILTERS entry, in a group. */
  function filterGroup(filterButtons) {
    const { el } = window.AtlasViews;
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
    return group;
  }

  /** Layer menu, segment filter (sentence pairs only) and threshold menu. */
  function buildControls(sentence, view) {
    const { el, isPair, range } = window.AtlasViews;
    const controls = el("div", "hv-controls");
    const layer = menu("hv-layer", "Layer ", "Layer", range(sentence.layers), (l) => `L${l}`);
    controls.append(layer.label);
    const filterButtons = new Map();
    if (isPair(sentence)) controls.append(filterGroup(filterButtons));
    const threshold = menu("hv-threshold", "Hide lines below ", "Hide lines below", THRESHOLDS, (t) => (t === 0 ? "none" : String(t)));
    threshold.select.value = String(view.threshold);
    controls.append(threshold.label);
    return { controls, layerSelect: layer.select, thresholdSelect: threshold.select, filterButtons };
  }

  /** One swatch per head, then "all heads" and "none". */
  function buildSwatches(sentence) {
    const { el, headColour, inkOn, range } = window.AtlasViews;
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
    return { swatches, swatchButtons };
  }

  // ---- the token columns, the lines and the bars

  /** A token of one column, carrying its side and index for hover and click. */
  function tokenCell(sentence, i, side) {
    const { el, tokenClass, tokenText } = window.AtlasViews;
    const token = tokenText(el("div", `hv-token ${tokenClass(sentence, i)}`.trim()), sentence, i);
    token.dataset.side = side;
    token.dataset.index = i;
    token.setAttribute("role", "option");
    token.setAttribute("aria-selected", "false");
    token.tabIndex = -1; // one token per column is in the tab order (rovingFocus)
    return token;
  }

  /** An importance bar; its row counts as the "to" token for hover and click. */
  function barRow(i) {
    const { el } = window.AtlasViews;
    const row = el("div", "hv-bar-row");
    row.dataset.side = "to";
    row.dataset.index = i;
    const bar = el("span", "hv-bar");
    bar.dataset.index = i;
    row.append(bar);
    return row;
  }

  /** From tokens, the lines canvas, to tokens and bars, side by side. */
  function buildColumns(sentence, rowH) {
    const { el } = window.AtlasViews;
    const body = el("div", "hv-body");
    body.style.setProperty("--row", `${rowH}px`);
    body.style.setProperty("--bar", `${BAR}px`);
    body.classList.toggle("hv-small", rowH < 15);
    const [fromCol, linesCol, toCol, barCol] = [["from", "from"], ["lines", ""], ["to", "to"], ["bars", "received"]].map(([kind, caption]) => {
      const col = el("div", `hv-col hv-${kind}`);
      col.append(el("div", "hv-caption", caption));
      body.append(col);
      return col;
    });
    const canvas = el("canvas", "hv-canvas");
    linesCol.append(canvas);
    const ctx = window.AtlasHeatmap.setSize(canvas, LINES_WIDTH, sentence.n * rowH);
    const fromTokens = [];
    const toTokens = [];
    const bars = [];
    for (const [col, name] of [[fromCol, "Attending tokens"], [toCol, "Attended tokens"]]) {
      col.setAttribute("role", "listbox");
      col.setAttribute("aria-label", `${name}: arrow keys move, Enter pins, Escape releases`);
    }
    for (let i = 0; i < sentence.n; i++) {
      fromTokens.push(fromCol.appendChild(tokenCell(sentence, i, "from")));
      toTokens.push(toCol.appendChild(tokenCell(sentence, i, "to")));
      bars.push(barCol.appendChild(barRow(i)).firstChild);
    }
    if (sentence.n) fromTokens[0].tabIndex = toTokens[0].tabIndex = 0;
    return { body, ctx, fromTokens, toTokens, bars, barsCaption: barCol.firstChild };
  }

  /** Every element of the view but the columns (setLevel builds those), into the (emptied)
   * container. */
  function buildUi(container, sentence, view) {
    container.replaceChildren();
    container.classList.add("head-view");
    const ui = { ...buildControls(sentence, view), ...buildSwatches(sentence) };
    ui.status = window.AtlasViews.el("p", "hv-status");
    ui.status.setAttribute("aria-live", "polite");
    const header = window.AtlasViews.el("div", "hv-top");
    header.append(ui.controls, ui.swatches, ui.status);
    container.append(header);
    return ui;
  }

  /** Shows the sentence at a level ("words" or "tokens"): new columns, nothing hovered or
   * pinned, matrices of that level. */
  function setLevel(hv, level) {
    hv.grid = hv.sentence.at(level);
    hv.rowH = rowHeight(hv.grid.n);
    hv.tokenName = tokenNamer(hv.grid);
    hv.cache = { layer: 0, matrices: new Map() };
    Object.assign(hv.view, { hover: null, pin: null });
    const old = hv.ui.body;
    Object.assign(hv.ui, buildColumns(hv.grid, hv.rowH));
    if (old) old.replaceWith(hv.ui.body);
    else hv.container.append(hv.ui.body);
    bindRows(hv);
    hv.container.dataset.level = hv.grid.level;
  }

  // ---- what is drawn

  /** A head's matrix of the shown layer, decoded once per layer and head. */
  function matrix(hv, head) {
    const { cache, view } = hv;
    if (cache.layer !== view.layer) {
      cache.layer = view.layer;
      cache.matrices = new Map();
    }
    if (!cache.matrices.has(head)) cache.matrices.set(head, hv.grid.matrix(view.layer, head));
    return cache.matrices.get(head);
  }

  /** [from segment, to segment] of the filter; null: any. */
  function segmentsOf(view) {
    const f = FILTERS.find((x) => x[0] === view.filter);
    return [f[2], f[3]];
  }

  /** The rows (attending tokens) and columns (attended tokens) the filter and the hovered or
   * pinned token leave. */
  function visibleTokens(hv) {
    const { grid: sentence, view } = hv;
    const token = view.hover || view.pin;
    const [fromSeg, toSeg] = segmentsOf(view);
    const rows = [];
    const cols = [];
    for (let i = 0; i < sentence.n; i++) {
      const seg = sentence.segments[i];
      if ((fromSeg === null || seg === fromSeg) && !(token && token.side === "from" && token.index !== i)) rows.push(i);
      if ((toSeg === null || seg === toSeg) && !(token && token.side === "to" && token.index !== i)) cols.push(i);
    }
    return { rows, cols };
  }

  /** Calls fn(head, from, to, weight) for every line drawn, the focused head last. */
  function forEachLine(hv, fn) {
    const { view } = hv;
    const n = hv.grid.n;
    const { rows, cols } = visibleTokens(hv);
    const order = sortedHeads(view).filter((h) => h !== view.focus);
    if (view.shown.has(view.focus)) order.push(view.focus);
    const t = view.threshold;
    for (const h of order) {
      const m = matrix(hv, h);
      for (const i of rows) {
        const base = i * n;
        for (const j of cols) {
          const w = m[base + j];
          if (w > 0 && w >= t) fn(h, i, j, w);
        }
      }
    }
  }

  /** Attention each token receives along the lines drawn: the weights of the shown heads that
   * the segment filter and the threshold keep, summed per attended token (hover aside), special
   * tokens left out. scale: the largest column sum of the shown heads with nothing left out,
   * so that the bars of every filter and threshold share one scale. */
  function importance(hv) {
    const { grid: sentence, view } = hv;
    const n = sentence.n;
    const [fromSeg, toSeg] = segmentsOf(view);
    const received = new Float64Array(n);
    const full = new Float64Array(n);
    const t = view.threshold;
    for (const h of view.shown) {
      const m = matrix(hv, h);
      for (let i = 0; i < n; i++) {
        const row = fromSeg === null || sentence.segments[i] === fromSeg;
        for (let j = 0; j < n; j++) {
          const w = m[i * n + j];
          full[j] += w;
          if (row && w > 0 && w >= t) received[j] += w;
        }
      }
    }
    let total = 0;
    let scale = 0;
    for (let j = 0; j < n; j++) {
      if (sentence.special[j] || (toSeg !== null && sentence.segments[j] !== toSeg)) received[j] = 0;
      if (!sentence.special[j]) scale = Math.max(scale, full[j]);
      total += received[j];
    }
    return { received, total, scale };
  }

  /** What the bars sum, for the bars' caption and tooltips: "received" or "received from A". */
  function barsCaption(view) {
    const [fromSeg] = segmentsOf(view);
    return fromSeg === null ? "received" : `received from ${"AB"[fromSeg]}`;
  }

  /** Strokes every line, one path per head and opacity step; returns the count and, for a
   * hovered or pinned token, the weights at the far end: {count, tint, top}. */
  function strokeLines(hv, token) {
    const { ctx } = hv.ui;
    const n = hv.grid.n;
    ctx.clearRect(0, 0, LINES_WIDTH, n * hv.rowH);
    const tint = new Float64Array(n);
    const top = [];
    let count = 0;
    let head = 0;
    const paths = new Array(LEVELS).fill(null);
    const flush = () => {
      for (let b = 0; b < LEVELS; b++) {
        if (!paths[b]) continue;
        ctx.globalAlpha = (b + 1) / LEVELS;
        ctx.lineWidth = hv.widths[b];
        ctx.stroke(paths[b]);
        paths[b] = null;
      }
    };
    forEachLine(hv, (h, i, j, w) => {
      if (h !== head) {
        flush();
        head = h;
        ctx.strokeStyle = window.AtlasViews.headColour(h);
      }
      // A long sentence's "other tokens" column (Sentence.at: its window) is one faint line a
      // row, whatever its weight: it gathers the rows' rest, not one token's share.
      const faint = j === hv.grid.aggregate;
      const b = faint ? 0 : Math.min(LEVELS - 1, Math.floor(Math.pow(w, GAMMA) * LEVELS));
      const path = paths[b] || (paths[b] = new Path2D());
      path.moveTo(X0, (i + 0.5) * hv.rowH);
      path.lineTo(X1, (j + 0.5) * hv.rowH);
      count++;
      if (token) {
        const other = token.side === "from" ? j : i; // the token at the far end
        tint[other] = Math.max(tint[other], w);
        top.push([w, h, other]);
      }
    });
    flush();
    ctx.globalAlpha = 1;
    return { count, tint, top };
  }

  /** Tokens: the hovered or pinned one marked, the far side tinted by the strongest weight. */
  function markTokens(hv, token, tint) {
    const { grid: sentence, view, ui } = hv;
    const tintColour = shownColour(view);
    const [fromSeg, toSeg] = segmentsOf(view);
    for (let i = 0; i < sentence.n; i++) {
      const seg = sentence.segments[i];
      for (const [tok, side, segment] of [[ui.fromTokens[i], "from", fromSeg], [ui.toTokens[i], "to", toSeg]]) {
        const isToken = token && token.side === side && token.index === i;
        tok.classList.toggle("focused", Boolean(isToken));
        tok.classList.toggle("pinned", Boolean(isToken && view.pin && !view.hover));
        tok.setAttribute("aria-selected", String(sameToken(view.pin, { side, index: i })));
        tok.classList.toggle("dim", segment !== null && seg !== segment);
        const weight = token && token.side !== side ? tint[i] : 0;
        tok.style.setProperty("--tint", tintColour);
        tok.style.setProperty("--w", `${Math.round(Math.pow(Math.min(1, weight), GAMMA) * 70)}%`);
      }
    }
  }

  /** The status line: a token's strongest lines, or what is shown. */
  function statusText(hv, token, top, count) {
    const { view } = hv;
    if (token) {
      top.sort((a, b) => b[0] - a[0]);
      const multi = view.shown.size > 1;
      const parts = top.slice(0, 6).map(([w, h, k]) => `${hv.tokenName(k)} ${w.toFixed(2)}${multi ? ` (H${h})` : ""}`);
      const verb = token.side === "from" ? "attends to" : "is attended by";
      const pinned = view.pin && !view.hover ? "pinned (Escape releases) · " : "";
      return `${pinned}“${hv.tokenName(token.index)}” ${verb}: ${parts.join(" · ") || "nothing above the threshold"}`;
    }
    const shown = sortedHeads(view);
    const heads = shown.length === 0 ? "no head shown (click a swatch)"
      : shown.length === hv.sentence.heads ? "all heads"
      : shown.map((h) => `H${h}`).join(" ");
    const hidden = view.threshold ? ` (weights below ${view.threshold} hidden)` : "";
    const filter = view.filter === "all" ? "" : `${FILTERS.find((f) => f[0] === view.filter)[1]} only · `;
    return `L${view.layer} · ${heads} · ${filter}${count} lines${hidden} · hover a token to isolate its lines, click to pin`;
  }

  function drawLines(hv) {
    const t0 = performance.now();
    const { view, ui, container } = hv;
    const token = view.hover || view.pin;
    const { count, tint, top } = strokeLines(hv, token);
    markTokens(hv, token, tint);
    ui.status.textContent = statusText(hv, token, top, count);
    ui.status.title = ui.status.textContent;
    Object.assign(container.dataset, {
      lines: count,
      token: token ? `${token.side}:${token.index}` : "",
      pinned: view.pin ? `${view.pin.side}:${view.pin.index}` : "",
      linesMs: (performance.now() - t0).toFixed(1),
    });
    if (!hv.measured) {
      hv.measured = true; // the first complete drawing is recorded as "atlas:head-view"
      performance.measure("atlas:head-view", "atlas:head-view:start");
    }
  }

  function drawBars(hv) {
    const { view, ui } = hv;
    const { received, total, scale } = importance(hv);
    const colour = shownColour(view);
    const heads = view.shown.size === 1 ? "this head" : `${view.shown.size} heads`;
    const filter = view.filter === "all" ? "" : ` ${FILTERS.find((f) => f[0] === view.filter)[1]},`;
    const kept = view.threshold ? ` weights ≥ ${view.threshold},` : "";
    ui.barsCaption.textContent = barsCaption(view);
    ui.barsCaption.title = `Bars: the attention each token receives along the lines drawn (${heads},${filter}${kept} ` +
      `special tokens left out; total ${total.toFixed(3)}); the longest bar possible is the largest column sum with nothing hidden`;
    ui.bars.forEach((bar, j) => {
      const value = received[j];
      const shown = value > 0 && scale > 0;
      bar.hidden = !shown;
      bar.style.width = shown ? `${((value / scale) * BAR).toFixed(2)}px` : "0px";
      bar.style.background = colour;
      bar.dataset.value = value.toFixed(6);
      bar.dataset.share = shown ? (value / total).toFixed(6) : "0";
      bar.parentElement.title = shown
        ? `“${hv.tokenName(j)}” receives ${value.toFixed(3)} along the lines drawn (${((100 * value) / total).toFixed(1)}% of their total;${filter}${kept} ${heads})`
        : "";
    });
    hv.container.dataset.barsTotal = total.toFixed(6);
  }

  function render(hv) {
    const t0 = performance.now();
    const { view, ui } = hv;
    ui.layerSelect.value = String(view.layer);
    for (const [h, button] of ui.swatchButtons) {
      button.setAttribute("aria-pressed", String(view.shown.has(h)));
      button.classList.toggle("focus", h === view.focus);
    }
    for (const [key, button] of ui.filterButtons) button.setAttribute("aria-pressed", String(key === view.filter));
    drawBars(hv);
    drawLines(hv);
    Object.assign(hv.container.dataset, {
      layer: view.layer,
      focus: view.focus,
      heads: sortedHeads(view).join(","),
      filter: view.filter,
      renderMs: (performance.now() - t0).toFixed(1),
    });
  }

  // ---- interaction

  /** The view's own changes go to the shared state, marked as its own. */
  const selectInState = (hv) => hv.state.select(hv.view.layer, hv.view.focus, "head-view");

  function bindControls(hv) {
    const { view, ui } = hv;
    ui.layerSelect.addEventListener("change", () => {
      view.layer = Number(ui.layerSelect.value);
      selectInState(hv);
      render(hv);
    });
    ui.thresholdSelect.addEventListener("change", () => {
      view.threshold = Number(ui.thresholdSelect.value);
      drawBars(hv);
      drawLines(hv);
    });
    for (const [key, button] of ui.filterButtons) {
      button.addEventListener("click", () => {
        view.filter = key;
        render(hv);
      });
    }
  }

  /** A swatch click: "all heads", "none", or one head toggled (shown: it becomes the focus). */
  function toggleHeads(hv, button) {
    const { view } = hv;
    const { range } = window.AtlasViews;
    if (button.dataset.action === "all") view.shown = new Set(range(hv.sentence.heads));
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
  }

  function bindSwatches(hv) {
    const { view, ui } = hv;
    ui.swatches.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      toggleHeads(hv, button);
      selectInState(hv);
      render(hv);
    });
    ui.swatches.addEventListener("dblclick", (event) => {
      const button = event.target.closest("button[data-head]");
      if (!button) return;
      view.focus = Number(button.dataset.head);
      view.shown = new Set([view.focus]);
      selectInState(hv);
      render(hv);
    });
  }

  const tokenOf = (event) => {
    const target = event.target.closest && event.target.closest("[data-side]");
    return target ? { side: target.dataset.side, index: Number(target.dataset.index) } : null;
  };
  const sameToken = (a, b) => (a && b ? a.side === b.side && a.index === b.index : a === b);

  /** Hover isolates a row's lines and a click pins it (on the columns of the shown level);
   * from the keyboard, a focused token is hovered and Enter or Space pins it (bindKeys). */
  function bindRows(hv) {
    const { view, ui } = hv;
    const hover = (token) => {
      if (sameToken(token, view.hover)) return;
      view.hover = token;
      drawLines(hv);
    };
    const pin = (token) => {
      view.pin = sameToken(token, view.pin) ? null : token;
      view.hover = null; // show the pin (or its release) at once
      drawLines(hv);
    };
    ui.body.addEventListener("mouseover", (event) => hover(tokenOf(event)));
    ui.body.addEventListener("mouseleave", () => hover(null));
    ui.body.addEventListener("click", (event) => {
      const token = tokenOf(event);
      if (token) pin(token);
    });
    bindKeys(hv, hover, pin);
  }

  // Keys on a focused token: up and down move along its column, left and right cross to the
  // other column (same row), Home and End go to the ends.
  const STEPS = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };

  /** The token element of {side, index} in the shown columns. */
  const tokenElement = (ui, { side, index }) => (side === "from" ? ui.fromTokens : ui.toTokens)[index];

  /** Moves the keyboard focus to a token; it becomes its column's one tab stop (roving focus). */
  function focusToken(hv, token) {
    const column = token.side === "from" ? hv.ui.fromTokens : hv.ui.toTokens;
    for (const t of column) t.tabIndex = -1;
    const target = tokenElement(hv.ui, token);
    target.tabIndex = 0;
    target.focus();
  }

  /** The keyboard on the token columns: a focused token shows its lines as a hovered one does,
   * arrows move, Enter or Space pins (as a click), Escape releases (bindEscape). The arrows
   * stay here: the page's own arrow keys (moving the head) skip an event handled here. */
  function bindKeys(hv, hover, pin) {
    const { ui } = hv;
    ui.body.addEventListener("focusin", (event) => hover(tokenOf(event)));
    ui.body.addEventListener("focusout", (event) => {
      if (!ui.body.contains(event.relatedTarget)) hover(null);
    });
    ui.body.addEventListener("keydown", (event) => {
      const token = tokenOf(event);
      if (!token || event.altKey || event.ctrlKey || event.metaKey) return;
      const n = hv.grid.n;
      let next = null;
      if (event.key === "Enter" || event.key === " ") pin(token);
      else if (event.key === "Home" || event.key === "End") next = { ...token, index: event.key === "Home" ? 0 : n - 1 };
      else if (STEPS[event.key]) {
        const [across, down] = STEPS[event.key];
        const side = across ? (across > 0 ? "to" : "from") : token.side;
        next = { side, index: Math.max(0, Math.min(n - 1, token.index + down)) };
      } else return;
      event.preventDefault();
      if (next) focusToken(hv, next);
    });
  }

  /** Escape (on the document, until the next mount on this container) releases the pin. */
  function bindEscape(hv, signal) {
    const { view } = hv;
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && view.pin) {
        view.pin = null;
        drawLines(hv);
      }
    }, { signal });
  }

  /** A selection from elsewhere shows that layer with that head alone; a change of level
   * shows the rows of that level. */
  function followState(hv, signal) {
    window.AtlasViews.follow(hv.state, (selection, source) => {
      if (source === "head-view") return;
      hv.view.layer = selection.layer;
      hv.view.focus = selection.head;
      hv.view.shown = new Set([selection.head]);
      render(hv);
    }, signal);
    window.AtlasViews.followLevel(hv.state, (level) => {
      setLevel(hv, level);
      render(hv);
    }, signal);
  }

  function initialView(sentence, start, options) {
    return {
      layer: start.layer,
      focus: start.head,
      shown: new Set(options.allHeads ? window.AtlasViews.range(sentence.heads) : [start.head]),
      filter: "all",
      threshold: 0.02,
      hover: null, // {side: "from" | "to", index}
      pin: null,
    };
  }

  function makeHandle(hv, started) {
    return {
      renderMs: performance.now() - started,
      /** Every line drawn now: [head, from, to, weight]. */
      lines() {
        const out = [];
        forEachLine(hv, (h, i, j, w) => out.push([h, i, j, w]));
        return out;
      },
      importance() {
        const { received, total, scale } = importance(hv);
        return { received: [...received], total, scale };
      },
      view: () => ({ ...hv.view, shown: sortedHeads(hv.view), level: hv.grid.level }),
      /** The row labels of the shown level (tokens, or words and special tokens). */
      labels: () => [...hv.grid.tokens],
    };
  }

  function mount(container, sentence, state, options = {}) {
    const signal = window.AtlasViews.remount(container);
    const started = performance.now();
    performance.mark("atlas:head-view:start");
    const view = initialView(sentence, state.get(), options);
    const hv = { container, sentence, state, view, ui: buildUi(container, sentence, view), widths: lineWidths(), measured: false };
    setLevel(hv, state.level());
    bindControls(hv);
    bindSwatches(hv);
    bindEscape(hv, signal);
    followState(hv, signal);
    render(hv);
    const handle = makeHandle(hv, started);
    container.dataset.mountMs = handle.renderMs.toFixed(1);
    handles.set(container, handle);
    return handle;
  }

  window.AtlasHeadView = { mount, of: (container) => handles.get(container) };
})();
