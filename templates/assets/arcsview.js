// Arcs view: the sentence's gold dependency arcs drawn over its words (an SVG arc diagram,
// each arc from the head to the dependent with its relation on top, the root marked), and the
// arcs the selected head gets right marked (Clark et al. 2019, §4.2), in one of two directions:
//   dependent → head: the word the dependent attends to most is its head;
//   head → dependent: the word that attends most to the dependent is its head (the same on the
//   transposed map, as Clark et al.'s code and atlas/analyses/syntax.py do).
// "Most": the argmax of the dependent's row (or, transposed, its column) of the word-level
// matrix (Sentence.unitMatrix) over word units only, special tokens and the word itself left out
// (on a tie, the first such word).
//   AtlasArcsView.mount(container, sentence, state) -> handle, or null without arcs
//   handle: {scores(), direction()}; AtlasArcsView.score(sentence, layer, head, direction).
// Layout: each arc rises to a level (displaCy's: one above every arc it spans, and above a
// crossing arc of its level) and has a flat top with its label on it, centred; words are spaced
// so every flat top is wider than its label, so no two labels can meet. The diagram keeps its
// natural width and a long sentence scrolls sideways in its box (focusable, named).
// The view follows the shared selection; without arcs it hides itself (and its .arcs-panel).
// Mounting again on the same container ends the previous mount (listeners, subscription).
//
// The functions below share one object, av: {container, sentence, state, direction, ui}.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const FONT = "13px system-ui, sans-serif";
  const GAP = 22; // CSS pixels between words
  const WORD_Y = 18; // height of the word row
  const TOP = 26; // room above the highest arc for its label and the root's
  const DIRECTIONS = [["dep-head", "dependent → head"], ["head-dep", "head → dependent"]];
  const handles = new WeakMap();

  /** The word unit u attends to most (argmax of W's row over the units of words other than
   * skipWord), or with transposed, the word that attends most to u (argmax of its column);
   * -1 if there is none. */
  function attendedWord(sentence, W, u, skipWord, transposed = false) {
    const { units } = sentence;
    const count = units.length;
    const at = (v) => (transposed ? W[v * count + u] : W[u * count + v]);
    let best = -1;
    for (let v = 0; v < count; v++) {
      const w = units[v].word;
      if (w === -1 || w === skipWord) continue;
      if (best < 0 || at(v) > at(best)) best = v;
    }
    return best < 0 ? -1 : units[best].word;
  }

  /** Per arc: true or false (the head gets it right in that direction), or null for the root's
   * arc and arcs of words without tokens (not scored). */
  function score(sentence, layer, head, direction) {
    const W = sentence.unitMatrix(layer, head);
    const unit = sentence.unitOfWord;
    return sentence.arcs.map(([d, h]) => {
      if (h < 0 || !unit.has(d) || !unit.has(h)) return null;
      return attendedWord(sentence, W, unit.get(d), d, direction === "head-dep") === h;
    });
  }

  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };

  const LABEL_FONT = "10px system-ui, sans-serif"; // .arc-label's font (atlas.css)
  const RISE = 16; // height of a level-1 arc above the words' row
  const LEVEL = 18; // CSS pixels between the flat tops of two levels: a label (10 px) fits between
  const CORNER = 6; // radius of an arc's rounded corners
  const FEET = 3; // an arc leaves its head 3 px off the word's centre, so in and out arcs part
  const LABEL_PAD = 2 * (CORNER + FEET) + 4; // a label's width plus this fits on its arc's flat top

  /** The scored arcs' ends, left to right: [{index, lo, hi}], the root's arc left out. */
  function spans(arcs) {
    const out = [];
    arcs.forEach(([d, h], index) => {
      if (h >= 0) out.push({ index, lo: Math.min(d, h), hi: Math.max(d, h) });
    });
    return out;
  }

  /** Each arc's level (1 = lowest), as displaCy draws them: one above every arc it spans, and
   * above any arc of that level it would overlap (crossing arcs of a non-projective tree), so the
   * flat tops of one level never share an x and their labels cannot collide. */
  function levels(arcs) {
    const level = new Map();
    const placed = [];
    const order = spans(arcs).sort((a, b) => a.hi - a.lo - (b.hi - b.lo) || a.lo - b.lo);
    for (const arc of order) {
      let l = 1;
      for (const p of placed) if (p.lo >= arc.lo && p.hi <= arc.hi) l = Math.max(l, p.level + 1);
      while (placed.some((p) => p.level === l && Math.max(p.lo, arc.lo) < Math.min(p.hi, arc.hi))) l++;
      placed.push({ ...arc, level: l });
      level.set(arc.index, l);
    }
    return level;
  }

  /** Word centres and the row's width, measured in FONT: words GAP apart, and further where an
   * arc's flat top would be narrower than its label (shortest arcs first, so widening one never
   * narrows another). */
  function layout(words, arcs) {
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = FONT;
    const centres = [];
    let x = GAP / 2;
    for (const word of words) {
      const w = ctx.measureText(word).width;
      centres.push(x + w / 2);
      x += w + GAP;
    }
    ctx.font = LABEL_FONT;
    const order = spans(arcs).sort((a, b) => a.hi - a.lo - (b.hi - b.lo) || a.lo - b.lo);
    for (const { index, lo, hi } of order) {
      const short = ctx.measureText(arcs[index][2]).width + LABEL_PAD - (centres[hi] - centres[lo]);
      if (short <= 0) continue;
      for (let w = hi; w < centres.length; w++) centres[w] += short;
      x += short;
    }
    return { centres, width: Math.ceil(x) };
  }

  /** One arc (head -> dependent, over the words: up, a flat top with rounded corners, down) or
   * the root's mark, in a group with its hover title and a wide invisible twin for the pointer;
   * its label sits on the flat top, centred. */
  function arcGroup(sentence, arc, index, geometry) {
    const [d, h, rel] = arc;
    const { centres, base, level } = geometry;
    const g = svg("g", { class: h < 0 ? "arc root" : "arc", "data-index": index });
    const title = svg("title");
    const words = sentence.words;
    title.textContent = h < 0 ? `${words[d]}: root` : `${words[d]} ← ${rel} ← ${words[h]}`;
    const xd = centres[d];
    let path;
    let label;
    if (h < 0) {
      path = `M ${xd} 4 L ${xd} ${base}`;
      label = svg("text", { x: xd + 3, y: 12, class: "arc-label" });
    } else {
      const xh = centres[h] + (d < h ? -FEET : FEET);
      const top = base - RISE - LEVEL * (level.get(index) - 1);
      const r = Math.min(CORNER, Math.abs(xd - xh) / 2);
      const s = Math.sign(xd - xh);
      path = `M ${xh} ${base} L ${xh} ${top + r} Q ${xh} ${top} ${xh + s * r} ${top} ` +
        `L ${xd - s * r} ${top} Q ${xd} ${top} ${xd} ${top + r} L ${xd} ${base}`;
      label = svg("text", { x: (xh + xd) / 2, y: top - 3, class: "arc-label", "text-anchor": "middle" });
    }
    label.textContent = h < 0 ? "root" : rel;
    g.append(title, svg("path", { d: path, class: "arc-line", "marker-end": "url(#arc-arrow)" }), svg("path", { d: path, class: "arc-hit" }), label);
    return g;
  }

  /** The diagram: words in a row, arcs above them. */
  function buildDiagram(sentence) {
    const { centres, width } = layout(sentence.words, sentence.arcs);
    const level = levels(sentence.arcs);
    const highest = Math.max(1, ...level.values());
    const base = TOP + RISE + LEVEL * (highest - 1); // y of the arcs' feet
    const root = svg("svg", { class: "arcs-svg", width, height: base + WORD_Y + 4, role: "img" });
    root.setAttribute("aria-label", "dependency arcs");
    const marker = svg("marker", { id: "arc-arrow", viewBox: "0 0 6 6", refX: 5, refY: 3, markerWidth: 7, markerHeight: 7, markerUnits: "userSpaceOnUse", orient: "auto" });
    marker.append(svg("path", { d: "M 0 0 L 6 3 L 0 6 z", class: "arc-arrow" }));
    const defs = svg("defs");
    defs.append(marker);
    root.append(defs);
    const groups = sentence.arcs.map((arc, i) => arcGroup(sentence, arc, i, { centres, base, level }));
    const height = (i) => (sentence.arcs[i][1] < 0 ? Infinity : level.get(i));
    const order = groups.map((g, i) => i).sort((i, j) => height(j) - height(i));
    root.append(...order.map((i) => groups[i])); // lower arcs (and their labels) on top
    sentence.words.forEach((word, w) => {
      const text = svg("text", { x: centres[w], y: base + WORD_Y - 4, class: "arc-word", "text-anchor": "middle" });
      text.textContent = word;
      root.append(text);
    });
    return { root, groups };
  }

  /** Direction buttons, the count line, the diagram in a scrolling box. */
  function buildUi(av) {
    const { el } = window.AtlasViews;
    const controls = el("div", "arcs-controls");
    controls.setAttribute("role", "group");
    controls.setAttribute("aria-label", "Direction");
    const buttons = DIRECTIONS.map(([value, text]) => {
      const button = el("button", "", text);
      button.type = "button";
      button.dataset.direction = value;
      controls.append(button);
      return button;
    });
    const count = el("p", "arcs-count");
    count.setAttribute("aria-live", "polite");
    // A long sentence scrolls sideways in its box, which the keyboard can reach and scroll.
    const box = el("div", "arcs-box");
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", "Dependency arcs (scrolls sideways)");
    const { root, groups } = buildDiagram(av.sentence);
    box.append(root);
    av.container.append(controls, count, box);
    return { buttons, count, groups, root };
  }

  /** Marks the arcs the selected head gets right and says how many. */
  function render(av) {
    const { sentence, state, ui, container } = av;
    const { layer, head } = state.get();
    const scores = score(sentence, layer, head, av.direction);
    ui.root.style.setProperty("--head-colour", window.AtlasViews.headColour(head));
    ui.groups.forEach((g, i) => {
      g.classList.toggle("right", scores[i] === true);
      g.classList.toggle("wrong", scores[i] === false);
    });
    for (const b of ui.buttons) b.setAttribute("aria-pressed", String(b.dataset.direction === av.direction));
    const right = scores.filter((s) => s === true).length;
    const total = scores.filter((s) => s !== null).length;
    const text = DIRECTIONS.find(([value]) => value === av.direction)[1];
    ui.count.textContent = `${window.AtlasData.headName(layer, head)} gets ${right} of ${total} arcs right (${text})`;
    Object.assign(container.dataset, { layer, head, direction: av.direction, right, total });
  }

  /** Shows the view's panel only when the sentence has arcs. */
  function showPanel(container, visible) {
    const panel = container.closest(".arcs-panel");
    if (panel) panel.hidden = !visible;
    container.hidden = !visible;
  }

  function mount(container, sentence, state) {
    const signal = window.AtlasViews.remount(container);
    container.replaceChildren();
    container.classList.add("arcs-view");
    showPanel(container, sentence.arcs.length > 0);
    if (!sentence.arcs.length) return null;
    const av = { container, sentence, state, direction: "dep-head" };
    av.ui = buildUi(av);
    for (const button of av.ui.buttons) {
      button.addEventListener("click", () => {
        av.direction = button.dataset.direction;
        render(av);
      });
    }
    window.AtlasViews.follow(state, () => render(av), signal);
    render(av);
    const handle = {
      scores: () => score(sentence, state.get().layer, state.get().head, av.direction),
      direction: () => av.direction,
    };
    handles.set(container, handle);
    return handle;
  }

  window.AtlasArcsView = { mount, score, of: (container) => handles.get(container) };
})();
