// Attention heatmaps on canvas: rows = attending token, columns = token attended to.
// Any <canvas class="heatmap" data-key data-layer data-head [data-labels]> is drawn on load;
// AtlasHeatmap.draw(canvas, key, layer, head) redraws one (the sentence page uses it).
"use strict";
(function () {
  const THUMB = 72; // CSS pixels of a thumbnail
  const FONT = "12px system-ui, sans-serif";

  /** White to dark blue, linear in the attention value. */
  function colour(v) {
    const t = Math.max(0, Math.min(1, v));
    return [Math.round(255 - t * 247), Math.round(255 - t * 174), Math.round(255 - t * 99)];
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

  /** A thumbnail: one pixel per value, scaled up without smoothing. */
  function drawThumb(canvas, sentence, layer, head) {
    const n = sentence.n;
    const pixels = new ImageData(n, n);
    const m = sentence.matrix(layer, head);
    for (let i = 0; i < n * n; i++) {
      const [r, g, b] = colour(m[i]);
      pixels.data.set([r, g, b, 255], i * 4);
    }
    const scratch = document.createElement("canvas");
    scratch.width = n;
    scratch.height = n;
    scratch.getContext("2d").putImageData(pixels, 0, 0);
    const ctx = setSize(canvas, THUMB, THUMB);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(scratch, 0, 0, THUMB, THUMB);
  }

  /** A labelled heatmap with token names on both axes and values on hover. */
  function drawLabelled(canvas, sentence, layer, head) {
    const n = sentence.n;
    const m = sentence.matrix(layer, head);
    const probe = canvas.getContext("2d");
    probe.font = FONT;
    const labelWidth = Math.min(140, 8 + Math.max(...sentence.tokens.map((t) => probe.measureText(t).width)));
    const cell = Math.max(4, Math.min(22, Math.floor(560 / n)));
    const width = labelWidth + n * cell + 4;
    const height = labelWidth + n * cell + 4;
    const ctx = setSize(canvas, width, height);
    ctx.font = FONT;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, height);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const [r, g, b] = colour(m[i * n + j]);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        ctx.fillRect(labelWidth + j * cell, labelWidth + i * cell, cell, cell);
      }
    }
    if (cell >= 8) {
      ctx.fillStyle = "#222";
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      sentence.tokens.forEach((t, i) => ctx.fillText(t, labelWidth - 4, labelWidth + (i + 0.5) * cell, labelWidth - 6));
      ctx.save();
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      sentence.tokens.forEach((t, j) => ctx.fillText(t, -labelWidth + 4, labelWidth + (j + 0.5) * cell, labelWidth - 6));
      ctx.restore();
    }
    canvas.onmousemove = (event) => {
      const rect = canvas.getBoundingClientRect();
      const j = Math.floor((event.clientX - rect.left - labelWidth) / cell);
      const i = Math.floor((event.clientY - rect.top - labelWidth) / cell);
      canvas.title = i >= 0 && j >= 0 && i < n && j < n
        ? `${sentence.tokens[i]} → ${sentence.tokens[j]}: ${m[i * n + j].toFixed(3)}`
        : "";
    };
  }

  function draw(canvas, key, layer, head) {
    const sentence = window.AtlasData.get(key);
    canvas.dataset.layer = layer;
    canvas.dataset.head = head;
    (canvas.dataset.labels ? drawLabelled : drawThumb)(canvas, sentence, layer, head);
    canvas.setAttribute("aria-label", `attention of ${window.AtlasData.headName(layer, head)}`);
  }

  function drawAll() {
    for (const canvas of document.querySelectorAll("canvas.heatmap")) {
      draw(canvas, canvas.dataset.key, Number(canvas.dataset.layer), Number(canvas.dataset.head));
    }
  }

  window.AtlasHeatmap = { draw, colour };
  document.addEventListener("DOMContentLoaded", drawAll);
})();
