// Token importance on a sentence page: attention rollout (Abnar and Zuidema 2020), computed here
// from the sentence's own attention (AtlasData), and gradient × input saliency, when the build
// measured it (a JSON block in the page). Both are drawn as one bar per token.
// Rollout: Ā_l = mean over the heads of layer l, rows renormalised; R = Π_l (0.5·Ā_l + 0.5·I),
// layer 1 applied first; row i of R at the last layer says how much token i's last-layer vector
// draws on each input token (each row sums to 1). atlas/analyses/importance.py holds the same
// formula in Python (the tests compare the two).
"use strict";
(function () {
  /** Layer-mean attention of one layer, rows renormalised: Float64Array n*n. */
  function layerMean(sentence, layer) {
    const n = sentence.n;
    const mean = new Float64Array(n * n);
    for (let h = 1; h <= sentence.heads; h++) {
      const m = sentence.matrix(layer, h);
      for (let i = 0; i < n * n; i++) mean[i] += m[i];
    }
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += mean[i * n + j];
      for (let j = 0; j < n; j++) mean[i * n + j] = sum > 0 ? mean[i * n + j] / sum : (i === j ? 1 : 0);
    }
    return mean;
  }

  /** The rollout at the last layer: Float64Array n*n, row = the token whose vector it is. */
  function rollout(sentence) {
    const n = sentence.n;
    let current = new Float64Array(n * n);
    for (let i = 0; i < n; i++) current[i * n + i] = 1;
    for (let layer = 1; layer <= sentence.layers; layer++) {
      const a = layerMean(sentence, layer);
      const next = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < n; k++) {
          const w = 0.5 * a[i * n + k] + (i === k ? 0.5 : 0);
          if (w === 0) continue;
          for (let j = 0; j < n; j++) next[i * n + j] += w * current[k * n + j];
        }
      }
      current = next;
    }
    return current;
  }

  /** One bar per token of the sentence, its length the token's share of the largest value. */
  function drawBars(place, sentence, values) {
    const top = Math.max(...values, 1e-12);
    const rows = sentence.tokens.map((_, i) => {
      const row = document.createElement("div");
      row.className = "ti-row";
      row.dataset.value = String(values[i]);
      const label = window.AtlasViews.tokenText(document.createElement("span"), sentence, i);
      label.classList.add("ti-token");
      const bar = document.createElement("span");
      bar.className = "ti-bar";
      bar.style.width = `${(100 * values[i]) / top}%`;
      const number = document.createElement("span");
      number.className = "ti-value";
      number.textContent = values[i].toFixed(3);
      const track = document.createElement("span");
      track.className = "ti-track";
      track.append(bar);
      row.append(label, track, number);
      return row;
    });
    place.replaceChildren(...rows);
  }

  /** The rollout bars of the row picked in the select (the first token's by default). */
  function mountRollout(place) {
    const sentence = window.AtlasData.get(place.dataset.key);
    const matrix = rollout(sentence);
    const n = sentence.n;
    const select = document.getElementById("rollout-row");
    select.replaceChildren(...sentence.tokens.map((_, i) => new Option(`${i + 1}: ${window.AtlasData.tokenLabel(sentence, i)}`, String(i))));
    const bars = document.getElementById("rollout-bars");
    const show = () => {
      const i = Number(select.value);
      drawBars(bars, sentence, Array.from(matrix.subarray(i * n, (i + 1) * n)));
    };
    select.addEventListener("change", show);
    show();
  }

  function mountSaliency(place) {
    const block = document.getElementById("saliency-data");
    if (!block) return;
    const sentence = window.AtlasData.get(place.dataset.key);
    drawBars(document.getElementById("saliency-bars"), sentence, JSON.parse(block.textContent));
  }

  function start() {
    const place = document.getElementById("token-importance");
    if (!place) return;
    mountRollout(place);
    mountSaliency(place);
  }

  window.AtlasRollout = { rollout };
  document.addEventListener("DOMContentLoaded", () => window.AtlasData.ready().then(start));
})();
