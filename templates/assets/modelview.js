// Model view: every layer × head of one sentence as a thumbnail heatmap (rows L1.., columns
// H1..). Each thumbnail is a canvas of n × n pixels filled once with ImageData and scaled by
// CSS; hovering one shows it enlarged with token names and the value under the pointer;
// clicking one selects that head in the shared state (the other views follow).
//   AtlasModelView.mount(container, sentence, state) -> handle
//   Head names and pattern labels (in titles and the preview) come from the page contract.
//   handle: {renderMs, preview(layer, head), hide()}; AtlasModelView.of(container) -> handle.
// Mounting again on the same container ends the previous mount (listeners, subscription).
// Thumbnails and preview show the state's level (state.level()): words when the sentence's
// words are known and the level is "words", else tokens.
//
// The functions below share one object, mv: {container, sentence, shown, state, perHead,
// thumbs, pending, grid, panel, ...}, where shown is the sentence at the shown level
// (sentence.at(level)).
"use strict";
(function () {
  const PREVIEW = 460; // largest side of the enlarged matrix, CSS pixels
  const SHADES = [["absolute", false, "0 to 1, as every heatmap of the site"], ["per head", true, "0 to each head's largest value"]];
  const handles = new WeakMap();

  const thumbKey = (layer, head) => `${layer}-${head}`;

  /** "L3-H4 · previous-token", or the name alone for an unlabelled head. */
  function headTitle(layer, head) {
    const { headName, headLabel } = window.AtlasData;
    const label = headLabel(layer, head);
    return label ? `${headName(layer, head)} · ${label}` : headName(layer, head);
  }

  /** Shading: absolute (as every heatmap of the site) or per head (darkest = the head's
   * largest value), which shows the pattern of broad heads too. */
  function buildShading(mv) {
    const { el } = window.AtlasViews;
    const shading = el("div", "mv-controls");
    shading.append(el("span", "caption-inline", "Shade "));
    const buttons = SHADES.map(([text, value, title]) => {
      const button = el("button", "", text);
      button.type = "button";
      button.title = title;
      button.setAttribute("aria-pressed", String(value === mv.perHead));
      button.addEventListener("click", () => {
        if (mv.perHead === value) return;
        mv.perHead = value;
        for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
        for (const canvas of mv.thumbs.values()) mv.pending.add(canvas);
        paintSome(mv);
      });
      shading.append(button);
      return button;
    });
    return shading;
  }

  /** What a screen reader hears for a thumbnail: the head, and where the generation starts. */
  function thumbLabel(mv, layer, head) {
    const note = window.AtlasData.generationNote(mv.shown || mv.sentence);
    return `attention of ${window.AtlasData.headName(layer, head)}${note}; click to select`;
  }

  /** One thumbnail canvas, n × n pixels, filled later by paint(). */
  function thumbnail(mv, layer, head) {
    const canvas = window.AtlasViews.el("canvas", "thumb");
    canvas.dataset.layer = layer;
    canvas.dataset.head = head;
    canvas.title = headTitle(layer, head);
    canvas.setAttribute("aria-label", thumbLabel(mv, layer, head));
    canvas.setAttribute("role", "button");
    canvas.tabIndex = -1; // the selected head's thumbnail is the grid's one tab stop (markSelected)
    return canvas;
  }

  /** The grid: head labels across, layer labels down, a thumbnail per head. */
  function buildGrid(mv) {
    const { el, headColour, range } = window.AtlasViews;
    const { sentence } = mv;
    const grid = el("div", "head-grid");
    grid.id = "head-grid";
    grid.style.setProperty("--heads", sentence.heads);
    grid.append(el("span", "corner"));
    for (const h of range(sentence.heads)) {
      const label = el("span", "col-label", `H${h}`);
      label.style.setProperty("--head-colour", headColour(h));
      grid.append(label);
    }
    for (const l of range(sentence.layers)) {
      grid.append(el("span", "row-label", `L${l}`));
      for (const h of range(sentence.heads)) {
        const canvas = thumbnail(mv, l, h);
        mv.thumbs.set(thumbKey(l, h), canvas);
        grid.append(canvas);
      }
    }
    return grid;
  }

  // Each thumbnail is filled once; a big model's are filled over a few frames, so the page
  // answers at once (a thumbnail needed earlier, e.g. for the preview, is filled then).
  function paint(mv, canvas) {
    if (!mv.pending.delete(canvas)) return canvas;
    const pixels = window.AtlasHeatmap.bitmap(mv.shown, Number(canvas.dataset.layer), Number(canvas.dataset.head), mv.perHead);
    canvas.getContext("2d").putImageData(pixels, 0, 0);
    return canvas;
  }

  function paintSome(mv) {
    if (mv.signal.aborted) return; // a later mount owns the container now
    const until = performance.now() + 40;
    for (const canvas of mv.pending) {
      paint(mv, canvas);
      if (performance.now() > until) break;
    }
    if (mv.pending.size) requestAnimationFrame(() => paintSome(mv));
    else if (!mv.container.dataset.paintedMs) {
      mv.container.dataset.paintedMs = (performance.now() - mv.started).toFixed(1);
      performance.measure("atlas:model-view", "atlas:model-view:start"); // every thumbnail drawn
    }
  }

  /** The enlarged preview; it floats beside the hovered thumbnail and ignores the pointer. */
  function buildPreview() {
    const { el } = window.AtlasViews;
    const panel = el("div", "mv-preview");
    panel.hidden = true;
    const title = el("div", "mv-preview-title");
    const canvas = el("canvas");
    const readout = el("div", "mv-readout");
    panel.append(title, canvas, readout);
    return { panel, title, canvas, readout };
  }

  /** Thumbnail size: as large as fits (28 to 72 CSS pixels), crisp when magnified. */
  function fit(mv) {
    const width = mv.container.clientWidth || 900;
    const size = Math.max(28, Math.min(72, Math.floor((width - 40) / mv.sentence.heads) - 4));
    mv.grid.style.setProperty("--thumb", `${size}px`);
    mv.grid.classList.toggle("pixelated", size * (window.devicePixelRatio || 1) >= mv.shown.n);
  }

  /** Shows the sentence at a level ("words" or "tokens"): every thumbnail sized n × n of that
   * level and painted again. */
  function setLevel(mv, level) {
    mv.shown = mv.sentence.at(level);
    hide(mv);
    for (const canvas of mv.thumbs.values()) {
      canvas.setAttribute("aria-label", thumbLabel(mv, Number(canvas.dataset.layer), Number(canvas.dataset.head)));
      canvas.width = mv.shown.n;
      canvas.height = mv.shown.n;
      mv.pending.add(canvas);
    }
    mv.container.dataset.level = mv.shown.level;
    fit(mv);
    paintSome(mv);
  }

  /** Shows the preview of a head (and a cell) on the next frame. */
  function preview(mv, layer, head, row = null, col = null) {
    mv.hovered = { layer, head, row, col };
    if (mv.frame) return;
    mv.frame = requestAnimationFrame(() => drawPreview(mv));
  }

  function drawPreview(mv) {
    mv.frame = 0;
    if (!mv.hovered) return;
    const { shown: sentence, enlarged } = mv;
    const { layer, head, row, col } = mv.hovered;
    enlarged.title.textContent = headTitle(layer, head) + (mv.perHead ? " (shaded per head)" : "");
    enlarged.title.style.setProperty("--head-colour", window.AtlasViews.headColour(head));
    const mark = row === null ? null : { row, col };
    const thumb = mv.thumbs.get(thumbKey(layer, head));
    window.AtlasHeatmap.drawLabelled(enlarged.canvas, sentence, layer, head, { size: PREVIEW, source: paint(mv, thumb), mark });
    enlarged.readout.textContent = mark
      ? window.AtlasHeatmap.cellText(sentence, layer, head, row, col)
      : "Click (or Enter) to open in the head view";
    enlarged.panel.hidden = false;
    place(mv, thumb);
  }

  /** Left of the whole grid if it fits there, else right of the thumbnail, else left of it. */
  function place(mv, thumb) {
    const { panel } = mv.enlarged;
    const rect = thumb.getBoundingClientRect();
    const w = panel.offsetWidth;
    const h = panel.offsetHeight;
    const gap = 12;
    let left = mv.grid.getBoundingClientRect().left - w - gap;
    if (left < 4) left = rect.right + gap;
    if (left + w > window.innerWidth - 4) left = Math.max(4, rect.left - w - gap);
    const top = Math.max(4, Math.min(rect.top - 40, window.innerHeight - h - 4));
    panel.style.left = `${Math.round(left)}px`;
    panel.style.top = `${Math.round(top)}px`;
  }

  function hide(mv) {
    mv.hovered = null;
    mv.enlarged.panel.hidden = true;
  }

  const thumbOf = (event) => (event.target.classList && event.target.classList.contains("thumb") ? event.target : null);

  /** Hover previews the cell under the pointer, a click selects the head; scrolling the page
   * (a window listener, until the next mount) hides the preview, which would float astray. */
  function bindGrid(mv, signal) {
    const { grid } = mv;
    grid.addEventListener("mousemove", (event) => {
      const thumb = thumbOf(event);
      if (!thumb) return hide(mv);
      const { n } = mv.shown;
      const rect = thumb.getBoundingClientRect();
      const cellOf = (offset, size) => Math.max(0, Math.min(n - 1, Math.floor((offset / size) * n)));
      preview(mv, Number(thumb.dataset.layer), Number(thumb.dataset.head),
        cellOf(event.clientY - rect.top, rect.height), cellOf(event.clientX - rect.left, rect.width));
    });
    grid.addEventListener("mouseleave", () => hide(mv));
    window.addEventListener("scroll", () => hide(mv), { passive: true, signal });
    grid.addEventListener("click", (event) => {
      const thumb = thumbOf(event);
      if (thumb) mv.state.select(Number(thumb.dataset.layer), Number(thumb.dataset.head), "model-view");
    });
    bindKeys(mv);
  }

  /** The keyboard: the selected head's thumbnail takes the focus (Tab), shows its preview as
   * a hovered one does, and Enter or Space selects it as a click does; the page's arrow keys
   * move the selection, and the focus follows it (markSelected). */
  function bindKeys(mv) {
    const { grid } = mv;
    grid.addEventListener("focusin", (event) => {
      const thumb = thumbOf(event);
      if (thumb) preview(mv, Number(thumb.dataset.layer), Number(thumb.dataset.head));
    });
    grid.addEventListener("focusout", (event) => {
      if (!grid.contains(event.relatedTarget)) hide(mv);
    });
    grid.addEventListener("keydown", (event) => {
      const thumb = thumbOf(event);
      if (!thumb || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      mv.state.select(Number(thumb.dataset.layer), Number(thumb.dataset.head), "model-view");
    });
  }

  /** The selected head's thumbnail is marked. */
  function markSelected(mv, { layer, head }) {
    const hadFocus = Boolean(mv.active) && document.activeElement === mv.active;
    if (mv.active) {
      mv.active.classList.remove("active");
      mv.active.tabIndex = -1;
      mv.active.removeAttribute("aria-current");
    }
    mv.active = mv.thumbs.get(thumbKey(layer, head));
    mv.active.classList.add("active");
    mv.active.tabIndex = 0;
    mv.active.setAttribute("aria-current", "true");
    if (hadFocus) mv.active.focus({ preventScroll: true });
    mv.container.dataset.layer = layer;
    mv.container.dataset.head = head;
  }

  /** Fits the thumbnails to the container now and whenever it resizes (until the next mount). */
  function fitAlways(mv, signal) {
    fit(mv);
    if (!window.ResizeObserver) return;
    const observer = new ResizeObserver(() => fit(mv));
    observer.observe(mv.container);
    signal.addEventListener("abort", () => observer.disconnect(), { once: true });
  }

  function mount(container, sentence, state) {
    const signal = window.AtlasViews.remount(container);
    const started = performance.now();
    performance.mark("atlas:model-view:start");
    container.replaceChildren();
    container.classList.add("model-view");
    delete container.dataset.paintedMs; // set again once this mount has painted every thumbnail
    const mv = { container, sentence, state, signal, started, perHead: false, thumbs: new Map(), pending: new Set(), hovered: null, frame: 0, active: null };
    const shading = buildShading(mv);
    mv.grid = buildGrid(mv);
    mv.enlarged = buildPreview();
    container.append(shading, mv.grid, mv.enlarged.panel);
    setLevel(mv, state.level());
    fitAlways(mv, signal);
    bindGrid(mv, signal);
    window.AtlasViews.follow(state, (selection) => markSelected(mv, selection), signal);
    window.AtlasViews.followLevel(state, (level) => setLevel(mv, level), signal);
    markSelected(mv, state.get());

    const handle = { renderMs: performance.now() - started, preview: (...args) => preview(mv, ...args), hide: () => hide(mv) };
    container.dataset.renderMs = handle.renderMs.toFixed(1);
    handles.set(container, handle);
    return handle;
  }

  window.AtlasModelView = { mount, of: (container) => handles.get(container) };
})();
