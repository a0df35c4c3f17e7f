// Attention heatmaps on canvas: rows = attending token, columns = token attended to.
// Any <canvas class="heatmap" data-key data-layer data-head [data-labels] [data-size]
// [data-min-cell]> is drawn on load;
// AtlasHeatmap.draw(canvas, key, layer, head, {level}) redraws one (the sentence page uses it).
// Labelled heatmaps show words when the sentence's words are known (level "words", the
// default), else tokens; on a head page, a switch (into [data-level-switch], with AtlasViews
// loaded) turns every one of them to tokens and back.
// Also shared with the sentence page's views: colour, bitmap (one pixel per value, as
// ImageData), drawLabelled (with options) and setSize (a canvas sized for the screen's pixels).
"use strict";
(function () {
  const THUMB = 72; // CSS pixels of a thumbnail
  const FONT = "12px system-ui, sans-serif";
  const GENERATED = "#a14a00"; // the generated tokens' names and where they start (6:1 on white)

  /** [r, g, b] of an attention value: the contract's sequential scale, white (0) to dark blue
   * (1). */
  let sequential = null;
  function colour(v) {
    if (!sequential) sequential = window.AtlasData.colourScale("sequential");
    return sequential(v);
  }

  // colour() of every stored level (0..attentionScale of the page contract), as RGBA pixels;
  // built on first use, once the config is known.
  let ramp = null;
  function levels() {
    if (!ramp) {
      const top = window.AtlasData.config().attentionScale;
      ramp = new Uint32Array(top + 1);
      const bytes = new Uint8ClampedArray(ramp.buffer);
      for (let v = 0; v <= top; v++) bytes.set([...colour(v / top), 255], v * 4);
    }
    return ramp;
  }

  function setSize(canvas, width, height) {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return ctx;
  }

  /** One head's attention as ImageData, one pixel per value (n × n); perHead: darkest = the
   * head's largest value (else 1). */
  function bitmap(sentence, layer, head, perHead = false) {
    const n = sentence.n;
    const m = sentence.matrix(layer, head);
    const RAMP = levels();
    const top = RAMP.length - 1;
    let scale = top;
    if (perHead) {
      let max = 0;
      for (let i = 0; i < n * n; i++) if (m[i] > max) max = m[i];
      if (max > 0) scale = top / max;
    }
    const pixels = new ImageData(n, n);
    const out = new Uint32Array(pixels.data.buffer); // same byte order as RAMP's
    for (let i = 0; i < n * n; i++) out[i] = RAMP[Math.min(top, Math.round(m[i] * scale))];
    return pixels;
  }

  /** A canvas holding bitmap(): something drawImage can scale. */
  function bitmapCanvas(sentence, layer, head) {
    const scratch = document.createElement("canvas");
    scratch.width = sentence.n;
    scratch.height = sentence.n;
    scratch.getContext("2d").putImageData(bitmap(sentence, layer, head), 0, 0);
    return scratch;
  }

  /** A thumbnail: one pixel per value, scaled up without smoothing. */
  function drawThumb(canvas, sentence, layer, head) {
    const ctx = setSize(canvas, THUMB, THUMB);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmapCanvas(sentence, layer, head), 0, 0, THUMB, THUMB);
  }

  /** "from → to: 0.123": one cell of a heatmap at either level, as hover shows it. */
  function cellText(sentence, layer, head, i, j) {
    const { tokenLabel } = window.AtlasData;
    return `${tokenLabel(sentence, i)} → ${tokenLabel(sentence, j)}: ${sentence.value(layer, head, i, j).toFixed(3)}`;
  }

  /** "every 2nd label shown" (k = 2), for the note under a heatmap whose labels are thinned. */
  function everyText(k) {
    const suffix = k % 10 === 1 && k % 100 !== 11 ? "st" : k % 10 === 2 && k % 100 !== 12 ? "nd" : k % 10 === 3 && k % 100 !== 13 ? "rd" : "th";
    return `every ${k}${suffix} label shown (cells too small for all); hover a cell for its tokens`;
  }

  /** The note right after a canvas (made on first use), hidden when text is empty. */
  function setNote(canvas, text) {
    let note = canvas.nextElementSibling;
    if (!note || !note.classList.contains("heatmap-note")) {
      if (!text) return;
      note = document.createElement("p");
      note.className = "heatmap-note";
      canvas.after(note);
    }
    note.textContent = text;
    note.hidden = !text;
  }

  // One tooltip for every heatmap of the page, following the pointer.
  let tip = null;
  function showTip(event, text) {
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "heatmap-tip";
      tip.setAttribute("role", "tooltip");
      document.body.append(tip);
    }
    tip.textContent = text;
    tip.hidden = !text;
    if (!text) return;
    const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, x)}px`;
    tip.style.top = `${event.clientY + 16}px`;
  }

  /** What hover shows at a point of a labelled heatmap: a cell's "from → to: value", or a
   * label's raw token (a word's pieces). */
  function hoverText(sentence, layer, head, geometry, x, y) {
    const { labelWidth, cell, n } = geometry;
    const j = Math.floor((x - labelWidth) / cell);
    const i = Math.floor((y - labelWidth) / cell);
    const inside = (k) => k >= 0 && k < n;
    if (inside(i) && inside(j)) return cellText(sentence, layer, head, i, j);
    if (x < labelWidth && inside(i)) return `${window.AtlasData.tokenLabel(sentence, i)} (token: ${sentence.raw[i]})`;
    if (y < labelWidth && inside(j)) return `${window.AtlasData.tokenLabel(sentence, j)} (token: ${sentence.raw[j]})`;
    return "";
  }

  function bindHover(canvas, sentence, layer, head, geometry) {
    canvas.removeAttribute("title");
    canvas.onmousemove = (event) => {
      const rect = canvas.getBoundingClientRect();
      const text = hoverText(sentence, layer, head, geometry, event.clientX - rect.left, event.clientY - rect.top);
      canvas.dataset.hover = text;
      showTip(event, text);
    };
    canvas.onmouseleave = (event) => {
      canvas.dataset.hover = "";
      showTip(event, "");
    };
  }

  /**
   * A labelled heatmap with token names on both axes (AtlasData.tokenLabel; columns rotated)
   * and "from → to: value" on hover. sentence may be a sentence at a level
   * (Sentence.at("words")): its rows are then words.
   * options: size (largest side of the matrix in CSS pixels, default 560), width (largest width
   * of the whole canvas), minCell (smallest cell, CSS pixels: the figure grows past size and
   * width rather than shrink below it), source (a canvas already holding bitmap(), e.g. a
   * thumbnail), mark ({row, col}: outline that row and column). When cells are too small for
   * every name, every k-th token is named and a note under the canvas says so. Returns the
   * geometry: {labelWidth, cell, n, every}.
   */
  function drawLabelled(canvas, sentence, layer, head, options = {}) {
    const n = sentence.n;
    const labels = sentence.tokens.map((_, i) => window.AtlasData.tokenLabel(sentence, i));
    const probe = canvas.getContext("2d");
    probe.font = FONT;
    const labelWidth = Math.min(140, 8 + Math.max(...labels.map((t) => probe.measureText(t).width)));
    const fits = Math.min(options.size || 560, options.width ? options.width - labelWidth - 4 : Infinity);
    const least = options.minCell || (options.size || options.width ? 1 : 4);
    const cell = Math.max(least, Math.min(22, Math.floor(fits / n)));
    const width = labelWidth + n * cell + 4;
    const height = labelWidth + n * cell + 4;
    const ctx = setSize(canvas, width, height);
    ctx.font = FONT;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(options.source || bitmapCanvas(sentence, layer, head), labelWidth, labelWidth, n * cell, n * cell);
    // Every name from 8-pixel cells up (in a smaller font below 12), else every k-th.
    const every = cell >= 8 ? 1 : Math.ceil(10 / cell);
    ctx.font = cell >= 12 ? FONT : `${Math.max(9, cell + 1)}px system-ui, sans-serif`;
    ctx.fillStyle = "#222";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    const named = (i) => i % every === 0 || (options.mark && (i === options.mark.row || i === options.mark.col));
    const ink = (i) => (sentence.generated && sentence.generated[i] ? GENERATED : "#222");
    labels.forEach((t, i) => {
      ctx.fillStyle = ink(i);
      if (named(i)) ctx.fillText(t, labelWidth - 4, labelWidth + (i + 0.5) * cell, labelWidth - 6);
    });
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    labels.forEach((t, j) => {
      ctx.fillStyle = ink(j);
      if (named(j)) ctx.fillText(t, -labelWidth + 4, labelWidth + (j + 0.5) * cell, labelWidth - 6);
    });
    ctx.restore();
    const start = window.AtlasData.promptEnd(sentence);
    if (start > 0) {
      // Where the model's generation starts: a dashed line across and down the matrix.
      ctx.save();
      ctx.strokeStyle = GENERATED;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(labelWidth, labelWidth + start * cell);
      ctx.lineTo(labelWidth + n * cell, labelWidth + start * cell);
      ctx.moveTo(labelWidth + start * cell, labelWidth);
      ctx.lineTo(labelWidth + start * cell, labelWidth + n * cell);
      ctx.stroke();
      ctx.restore();
    }
    if (options.mark) {
      const { row, col } = options.mark;
      ctx.strokeStyle = "#d62728";
      ctx.lineWidth = 1;
      ctx.strokeRect(labelWidth + 0.5, labelWidth + row * cell + 0.5, n * cell - 1, cell - 1);
      ctx.strokeRect(labelWidth + col * cell + 0.5, labelWidth + 0.5, cell - 1, n * cell - 1);
    }
    const geometry = { labelWidth, cell, n, every };
    bindHover(canvas, sentence, layer, head, geometry);
    Object.assign(canvas.dataset, { cell, labelWidth, labelEvery: every });
    setNote(canvas, every > 1 ? everyText(every) : "");
    return geometry;
  }

  /** options: as drawLabelled's, and level ("words" by default; thumbnails are of tokens). */
  function draw(canvas, key, layer, head, options = {}) {
    const sentence = window.AtlasData.get(key);
    canvas.dataset.layer = layer;
    canvas.dataset.head = head;
    if (canvas.dataset.labels) {
      const shown = sentence.at(options.level || "words");
      canvas.dataset.level = shown.level;
      drawLabelled(canvas, shown, layer, head, options);
    } else drawThumb(canvas, sentence, layer, head);
    const shown = canvas.dataset.labels ? sentence.at(canvas.dataset.level || "tokens") : sentence;
    canvas.setAttribute("aria-label", `attention of ${window.AtlasData.headName(layer, head)}${window.AtlasData.generationNote(shown)}`);
  }

  const pageHeatmaps = () => [...document.querySelectorAll("canvas.heatmap")];

  function drawAll(level = "words") {
    for (const canvas of pageHeatmaps()) {
      const size = Number(canvas.dataset.size) || undefined; // data-size: largest side, CSS px
      const minCell = Number(canvas.dataset.minCell) || undefined; // data-min-cell: CSS px
      draw(canvas, canvas.dataset.key, Number(canvas.dataset.layer), Number(canvas.dataset.head), { size, minCell, level });
    }
  }

  /** The page's level switch, where one is asked for and some labelled heatmap has words. */
  function mountLevelSwitch() {
    const places = document.querySelectorAll("[data-level-switch]");
    const words = pageHeatmaps().some((c) => c.dataset.labels && window.AtlasData.get(c.dataset.key).hasWords);
    if (!places.length || !words || !window.AtlasViews) return;
    const switches = [];
    const change = (level) => {
      for (const s of switches) s.show(level);
      drawAll(level);
    };
    for (const place of places) {
      const s = window.AtlasViews.levelSwitch("words", change);
      switches.push(s);
      place.append(s.element);
      place.hidden = false;
    }
  }

  window.AtlasHeatmap = { draw, colour, bitmap, drawLabelled, cellText, setSize };
  document.addEventListener("DOMContentLoaded", () => window.AtlasData.ready().then(() => {
    drawAll();
    mountLevelSwitch();
  }));
})();
