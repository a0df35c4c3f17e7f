// Token importance on a sentence page: attention rollout (Abnar and Zuidema 2020) and
// gradient × input saliency, when the build measured it (a JSON block in the page). Both are
// drawn as one bar per token.
// Rollout: Ā_l = mean over the heads of layer l, rows renormalised; R = Π_l (0.5·Ā_l + 0.5·I),
// layer 1 applied first; row i of R at the last layer says how much token i's last-layer vector
// draws on each input token (each row sums to 1). It is computed in Python from the model's
// float attention (atlas/viewdata.py, ``rollout``) and stored in the sentence's data script
// (Sentence.rollout, within 1/131070 of the float value); this script only draws its rows. (The
// page's uint8 attention rolled out here was up to 0.08 off on long sentences.)
"use strict";
(function () {
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

  /** The key of the sentence whose attention the page shows: model B's in a compare atlas
   * while its switch (sentence.js) shows B, else the section's own. */
  function shownKey(place) {
    const views = document.querySelector(".sentence-views");
    return views && views.dataset.model === "B" && views.dataset.keyB ? views.dataset.keyB : place.dataset.key;
  }

  /** The rollout bars of the row picked in the select (the first token's by default) of the
   * model the page shows; drawn again, on the same row, when the page switches model. */
  function mountRollout(place) {
    const sentence = window.AtlasData.get(shownKey(place));
    const matrix = sentence.rollout;
    const n = sentence.n;
    const bars = document.getElementById("rollout-bars");
    if (!matrix) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = sentence.top
        ? `No rollout for a sentence this long (${n} tokens): it would take n³ work a layer and n² values.`
        : "No rollout is stored for this sentence (its data file is from an older atlas: build it again).";
      bars.replaceChildren(note);
      return;
    }
    const select = document.getElementById("rollout-row");
    const chosen = select.value || "0";
    select.replaceChildren(...sentence.tokens.map((_, i) => new Option(`${i + 1}: ${window.AtlasData.tokenLabel(sentence, i)}`, String(i))));
    select.value = chosen;
    select.onchange = () => {
      const i = Number(select.value);
      drawBars(bars, sentence, Array.from(matrix.subarray(i * n, (i + 1) * n)));
    };
    select.onchange();
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
    const views = document.querySelector(".sentence-views[data-key-b]");
    if (views) new MutationObserver(() => mountRollout(place)).observe(views, { attributeFilter: ["data-model"] });
  }

  document.addEventListener("DOMContentLoaded", () => window.AtlasData.ready().then(start));
})();
