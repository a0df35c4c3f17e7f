// Attention heatmaps on canvas: rows = attending token, columns = token attended to.
// Any <canvas class="heatmap" data-key data-layer data-head [data-labels] [data-size]> is drawn on load;
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

  /**
   * A labelled heatmap with token names on both axes and values on hover. sentence may be a
   * sentence at a level (Sentence.at("words")): its rows are then words.
   * options: size (largest side of the matrix in CSS pixels, default 560), width (largest width
   * of the whole canvas), source (a canvas already holding bitmap(), e.g. a thumbnail), mark
   * ({row, col}: outline that row and column). When cells are too small for every name, every
   * k-th token is named. Returns the geometry: {labelWidth, cell, n}.
   */
  function drawLabelled(canvas, sentence, layer, head, options = {}) {
    const n = sentence.n;
    const probe = canvas.getContext("2d");
    probe.font = FONT;
    const labelWidth = Math.min(140, 8 + Math.max(...sentence.tokens.map((t) => probe.measureText(t).width)));
    const fits = Math.min(options.size || 560, options.width ? options.width - labelWidth - 4 : Infinity);
    const cell = Math.max(options.size || options.width ? 1 : 4, Math.min(22, Math.floor(fits / n)));
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
    sentence.tokens.forEach((t, i) => {
      if (named(i)) ctx.fillText(t, labelWidth - 4, labelWidth + (i + 0.5) * cell, labelWidth - 6);
    });
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    sentence.tokens.forEach((t, j) => {
      if (named(j)) ctx.fillText(t, -labelWidth + 4, labelWidth + (j + 0.5) * cell, labelWidth - 6);
    });
    ctx.restore();
    if (options.mark) {
      const { row, col } = options.mark;
      ctx.strokeStyle = "#d62728";
      ctx.lineWidth = 1;
      ctx.strokeRect(labelWidth + 0.5, labelWidth + row * cell + 0.5, n * cell - 1, cell - 1);
      ctx.strokeRect(labelWidth + col * cell + 0.5, labelWidth + 0.5, cell - 1, n * cell - 1);
    }
    canvas.onmousemove = (event) => {
      const rect = canvas.getBoundingClientRect();
      const j = Math.floor((event.clientX - rect.left - labelWidth) / cell);
      const i = Math.floor((event.clientY - rect.top - labelWidth) / cell);
      canvas.title = i >= 0 && j >= 0 && i < n && j < n
        ? `${sentence.tokens[i]} → ${sentence.tokens[j]}: ${sentence.value(layer, head, i, j).toFixed(3)}`
        : "";
    };
    return { labelWidth, cell, n };
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
    canvas.setAttribute("aria-label", `attention of ${window.AtlasData.headName(layer, head)}`);
  }

  const pageHeatmaps = () => [...document.querySelectorAll("canvas.heatmap")];

  function drawAll(level = "words") {
    for (const canvas of pageHeatmaps()) {
      const size = Number(canvas.dataset.size) || undefined; // data-size: largest side, CSS px
      draw(canvas, canvas.dataset.key, Number(canvas.dataset.layer), Number(canvas.dataset.head), { size, level });
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

  window.AtlasHeatmap = { draw, colour, bitmap, drawLabelled, setSize };
  document.addEventListener("DOMContentLoaded", () => window.AtlasData.ready().then(() => {
    drawAll();
    mountLevelSwitch();
  }));
})();
