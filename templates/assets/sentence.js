// The sentence page controller: one shared selection (AtlasState) for every view; the URL hash
// (#L9-H6) follows it, so a link opens the page with a head selected; arrow keys move it.
// Mounts the head view, the arcs view, the model view and the neuron view, and keeps the
// labelled heatmap of the selected head (#selected-heatmap) in step. When the sentence's words
// are known, one switch (#level-switch) sets the level of every view but the neuron view
// (words by default, or tokens), through the shared state. Head names, labels and links come from the
// page contract (AtlasData). AtlasSentencePage.init() may run again: it replaces the last run.
// In a compare atlas (data-key-b: model B's attention of the sentence, same tokens), a switch
// (#model-switch) mounts every view again on A's or B's attention, keeping the selection and
// level, and the difference map (diffview.js) shows B − A of the selected head.
// A long sentence (sparse rows, atlas-data.js) is drawn a window of tokens at a time: a slider
// (#token-window) moves the window and mounts the views again on it.
"use strict";
(function () {
  const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

  /** The panel of the selected head; returns show(selection), which fills it with the
   * attention of the sentence keyOf() names (A's, or B's in a compare atlas). */
  function selectedPanel(keyOf, state, modelOf = () => "A") {
    const { AtlasData } = window;
    const big = document.getElementById("selected-heatmap");
    const title = document.getElementById("selected-title");
    const badge = document.getElementById("selected-label");
    const link = document.getElementById("selected-link");
    return function show({ layer, head }) {
      const name = AtlasData.headName(layer, head);
      const model = modelOf();
      const label = AtlasData.headLabel(layer, head, model);
      const width = Math.max(320, big.parentElement.clientWidth);
      window.AtlasHeatmap.draw(big, keyOf(), layer, head, { size: 560, width, level: state.level() });
      title.textContent = name;
      badge.hidden = !label;
      badge.textContent = label || "";
      badge.className = label ? `label ${AtlasData.labelClass(layer, head, model)}` : "label";
      badge.title = model === "B" ? "model B's pattern for this head" : "";
      link.href = AtlasData.headHref(layer, head);
      link.textContent = `Open ${name}'s page`;
    };
  }

  /** The address and the panel follow the selection. */
  function followSelection(state, show, signal) {
    const headView = document.getElementById("head-view");
    window.AtlasViews.follow(state, (selection, source) => {
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
    }, signal);
  }

  /** The level switch (only when the words are known) and the selected heatmap follow the
   * shared level. */
  function bindLevel(sentence, state, show, signal) {
    const place = document.getElementById("level-switch");
    if (!place || !sentence.hasWords) return;
    const { element, show: press } = window.AtlasViews.levelSwitch(state.level(), (level) => state.setLevel(level, "switch"));
    place.replaceChildren(element);
    place.hidden = false;
    window.AtlasViews.followLevel(state, (level) => {
      press(level);
      show(state.get());
    }, signal);
  }

  /** The window slider of a long sentence: which tokens every view draws (Sentence.at), of
   * both models' attention in a compare atlas (keys.B). */
  function bindWindow(section, keys, shown, state, show) {
    const { AtlasData } = window;
    const sentence = AtlasData.get(keys.A);
    const old = document.getElementById("token-window");
    if (old) old.remove();
    if (!sentence.top) return;
    const { el } = window.AtlasViews;
    const size = window.AtlasData.config().windowTokens;
    const box = el("div", "token-window");
    box.id = "token-window";
    const label = el("label", "", "Tokens shown ");
    const slider = el("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = String(Math.max(0, sentence.n - size));
    slider.step = "1";
    slider.value = String(sentence.windowStart);
    const said = el("output");
    const note = el("p", "note", `This sentence has ${sentence.n} tokens: the views draw ${size} at a time, ` +
      "and the attention to every other token as one \"other tokens\" column. Each row keeps its " +
      `${sentence.top} largest value(s); a dropped value is at most the smallest kept one.`);
    const say = () => { said.textContent = `${sentence.windowStart + 1}–${Math.min(sentence.n, sentence.windowStart + size)} of ${sentence.n}`; };
    slider.addEventListener("change", () => {
      for (const key of [keys.A, keys.B].filter(Boolean)) AtlasData.get(key).windowStart = Number(slider.value);
      say();
      mountViews(AtlasData.get(keys[shown.model]), state);
      show(state.get());
    });
    label.append(slider);
    box.append(label, said, note);
    section.prepend(box);
    say();
  }

  /** Arrow keys move the selection; a new address (#L9-H6) selects that head. */
  function bindNavigation(state, signal) {
    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented) return; // a view handled the key (the head view's token rows)
      // A focused scroll box (the arcs of a long sentence) keeps its arrow keys for scrolling.
      if (event.target.closest && event.target.closest("input, textarea, select, .arcs-box")) return;
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      const move = MOVES[event.key];
      if (!move) return;
      event.preventDefault();
      const { layer, head } = state.get();
      state.select(layer + move[0], head + move[1], "keys");
    }, { signal });
    window.addEventListener("hashchange", () => {
      const h = window.AtlasData.parseHead(location.hash);
      if (h) state.select(h.layer, h.head, "hash");
    }, { signal });
  }

  /** Each view: one global with mount(container, sentence, state[, options]). The head view
   * opens on the selected head alone ("all heads" is one click away). */
  function mountViews(sentence, state) {
    const views = [
      ["head-view", window.AtlasHeadView],
      ["arcs-view", window.AtlasArcsView],
      ["model-view", window.AtlasModelView],
      ["neuron-view", window.AtlasNeuronView],
    ];
    for (const [id, view] of views) {
      const container = document.getElementById(id);
      if (!container || !view) continue;
      try {
        view.mount(container, sentence, state);
      } catch (err) {
        console.error(`${id}:`, err); // one broken view leaves the others working
      }
    }
  }

  /** The A/B switch of a compare atlas: mounts every view on the chosen model's attention
   * (shown.model: "A" or "B") and the difference map B − A. */
  function bindModel(section, keys, shown, state, show) {
    const place = document.getElementById("model-switch");
    if (!place || !keys.B) return;
    const { AtlasData, AtlasViews } = window;
    const [a, b] = [AtlasData.get(keys.A), AtlasData.get(keys.B)];
    const diff = document.getElementById("diff-heatmap");
    if (diff && window.AtlasDiffView) window.AtlasDiffView.mount(diff, a, b, state, AtlasViews.remount(diff));
    const choices = [["A", `A: ${place.dataset.modelA}`, "Model A's attention"], ["B", `B: ${place.dataset.modelB}`, "Model B's attention"]];
    const choose = (model) => {
      if (model === shown.model) return;
      shown.model = model;
      press(model);
      section.dataset.model = model;
      mountViews(AtlasData.get(keys[model]), state);
      show(state.get());
    };
    const { element, show: press } = AtlasViews.choiceSwitch("model-switch", "Model ", "Model", choices, shown.model, choose);
    place.replaceChildren(element);
    place.hidden = false;
    section.dataset.model = shown.model;
  }

  /** Decodes the page's data (AtlasData.ready), then mounts the views; resolves when done. */
  function init() {
    return window.AtlasData.ready().then(start);
  }

  function start() {
    const section = document.querySelector(".sentence-views");
    if (!section) return;
    const signal = window.AtlasViews.remount(section);
    const keys = { A: section.dataset.key, B: section.dataset.keyB };
    const shown = { model: "A" };
    const sentence = window.AtlasData.get(keys.A);
    const fromHash = window.AtlasData.parseHead(location.hash);
    const state = window.AtlasState.create(sentence.layers, sentence.heads, fromHash || { layer: 1, head: 1 });
    const show = selectedPanel(() => keys[shown.model], state, () => shown.model);
    followSelection(state, show, signal);
    bindLevel(sentence, state, show, signal);
    bindNavigation(state, signal);
    bindWindow(section, keys, shown, state, show);
    mountViews(sentence, state);
    bindModel(section, keys, shown, state, show);
    show(state.get());
  }

  window.AtlasSentencePage = { init };
  document.addEventListener("DOMContentLoaded", init);
})();
