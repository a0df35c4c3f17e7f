// Model view: every layer × head of one sentence as a thumbnail heatmap (rows L1.., columns
// H1..). Each thumbnail is a canvas of n × n pixels filled once with ImageData and scaled by
// CSS; hovering one shows it enlarged with token names and the value under the pointer;
// clicking one selects that head in the shared state (the other views follow).
//   AtlasModelView.mount(container, sentence, state, {labels}) -> handle
//   labels: optional {"L3-H4": "previous-token", ...}, shown in titles and the preview.
//   handle: {renderMs, preview(layer, head), hide()}; AtlasModelView.of(container) -> handle.
"use strict";
(function () {
  const PREVIEW = 460; // largest side of the enlarged matrix, CSS pixels
  const handles = new WeakMap();

  function mount(container, sentence, state, options = {}) {
    const { el, headColour, range } = window.AtlasViews;
    const { headName } = window.AtlasData;
    const labels = options.labels || {};
    const started = performance.now();
    performance.mark("atlas:model-view:start");
    const n = sentence.n;
    container.replaceChildren();
    container.classList.add("model-view");

    // Shading: absolute (as every heatmap of the site) or per head (darkest = the head's largest
    // value), which shows the pattern of broad heads too.
    let perHead = false;
    const shading = el("div", "mv-controls");
    shading.append(el("span", "caption-inline", "Shade "));
    const shadeButtons = [["absolute", false, "0 to 1, as every heatmap of the site"], ["per head", true, "0 to each head's largest value"]].map(
      ([text, value, title]) => {
        const button = el("button", "", text);
        button.type = "button";
        button.title = title;
        button.setAttribute("aria-pressed", String(value === perHead));
        button.addEventListener("click", () => {
          if (perHead === value) return;
          perHead = value;
          for (const b of shadeButtons) b.setAttribute("aria-pressed", String(b === button));
          for (const canvas of thumbs.values()) pending.add(canvas);
          paintSome();
        });
        shading.append(button);
        return button;
      },
    );

    const grid = el("div", "head-grid");
    grid.id = "head-grid";
    grid.style.setProperty("--heads", sentence.heads);
    grid.append(el("span", "corner"));
    for (const h of range(sentence.heads)) {
      const label = el("span", "col-label", `H${h}`);
      label.style.setProperty("--head-colour", headColour(h));
      grid.append(label);
    }
    const thumbs = new Map(); // "L-H" -> canvas
    for (const l of range(sentence.layers)) {
      grid.append(el("span", "row-label", `L${l}`));
      for (const h of range(sentence.heads)) {
        const canvas = el("canvas", "thumb");
        const name = headName(l, h);
        canvas.width = n;
        canvas.height = n;
        canvas.dataset.layer = l;
        canvas.dataset.head = h;
        canvas.title = labels[name] ? `${name} · ${labels[name]}` : name;
        canvas.setAttribute("aria-label", `attention of ${name}; click to select`);
        thumbs.set(`${l}-${h}`, canvas);
        grid.append(canvas);
      }
    }

    // Each thumbnail is filled once; a big model's are filled over a few frames, so the page
    // answers at once (a thumbnail needed earlier, e.g. for the preview, is filled then).
    const pending = new Set(thumbs.values());
    function paint(canvas) {
      if (!pending.delete(canvas)) return canvas;
      const pixels = window.AtlasHeatmap.bitmap(sentence, Number(canvas.dataset.layer), Number(canvas.dataset.head), perHead);
      canvas.getContext("2d").putImageData(pixels, 0, 0);
      return canvas;
    }
    function paintSome() {
      const until = performance.now() + 40;
      for (const canvas of pending) {
        paint(canvas);
        if (performance.now() > until) break;
      }
      if (pending.size) requestAnimationFrame(paintSome);
      else if (!container.dataset.paintedMs) {
        container.dataset.paintedMs = (performance.now() - started).toFixed(1);
        performance.measure("atlas:model-view", "atlas:model-view:start"); // every thumbnail drawn
      }
    }
    paintSome();

    // The enlarged preview floats beside the hovered thumbnail and ignores the pointer.
    const panel = el("div", "mv-preview");
    panel.hidden = true;
    const panelTitle = el("div", "mv-preview-title");
    const panelCanvas = el("canvas");
    const readout = el("div", "mv-readout");
    panel.append(panelTitle, panelCanvas, readout);
    container.append(shading, grid, panel);

    // Thumbnail size: as large as fits (28 to 72 CSS pixels), crisp when magnified.
    function fit() {
      const width = container.clientWidth || 900;
      const size = Math.max(28, Math.min(72, Math.floor((width - 40) / sentence.heads) - 4));
      grid.style.setProperty("--thumb", `${size}px`);
      grid.classList.toggle("pixelated", size * (window.devicePixelRatio || 1) >= n);
    }
    fit();
    if (window.ResizeObserver) new ResizeObserver(fit).observe(container);

    let hovered = null; // {layer, head, row, col}
    let frame = 0;
    function preview(layer, head, row = null, col = null) {
      hovered = { layer, head, row, col };
      if (frame) return;
      frame = requestAnimationFrame(drawPreview);
    }
    function drawPreview() {
      frame = 0;
      if (!hovered) return;
      const { layer, head, row, col } = hovered;
      const name = headName(layer, head);
      panelTitle.textContent = (labels[name] ? `${name} · ${labels[name]}` : name) + (perHead ? " (shaded per head)" : "");
      panelTitle.style.setProperty("--head-colour", headColour(head));
      const mark = row === null ? null : { row, col };
      window.AtlasHeatmap.drawLabelled(panelCanvas, sentence, layer, head, {
        size: PREVIEW,
        source: paint(thumbs.get(`${layer}-${head}`)),
        mark,
      });
      readout.textContent = mark
        ? `${sentence.tokens[row]} → ${sentence.tokens[col]}: ${sentence.value(layer, head, row, col).toFixed(3)}`
        : "Click to open in the head view";
      panel.hidden = false;
      place(thumbs.get(`${layer}-${head}`));
    }
    function place(thumb) {
      const rect = thumb.getBoundingClientRect();
      const w = panel.offsetWidth;
      const h = panel.offsetHeight;
      const gap = 12;
      const gridLeft = grid.getBoundingClientRect().left;
      // Left of the whole grid if it fits there, else right of the thumbnail, else left of it.
      let left = gridLeft - w - gap;
      if (left < 4) left = rect.right + gap;
      if (left + w > window.innerWidth - 4) left = Math.max(4, rect.left - w - gap);
      const top = Math.max(4, Math.min(rect.top - 40, window.innerHeight - h - 4));
      panel.style.left = `${Math.round(left)}px`;
      panel.style.top = `${Math.round(top)}px`;
    }
    function hide() {
      hovered = null;
      panel.hidden = true;
    }

    const thumbOf = (event) => (event.target.classList && event.target.classList.contains("thumb") ? event.target : null);
    grid.addEventListener("mousemove", (event) => {
      const thumb = thumbOf(event);
      if (!thumb) return hide();
      const rect = thumb.getBoundingClientRect();
      const cellOf = (offset, size) => Math.max(0, Math.min(n - 1, Math.floor((offset / size) * n)));
      preview(
        Number(thumb.dataset.layer),
        Number(thumb.dataset.head),
        cellOf(event.clientY - rect.top, rect.height),
        cellOf(event.clientX - rect.left, rect.width),
      );
    });
    grid.addEventListener("mouseleave", hide);
    window.addEventListener("scroll", hide, { passive: true });
    grid.addEventListener("click", (event) => {
      const thumb = thumbOf(event);
      if (thumb) state.select(Number(thumb.dataset.layer), Number(thumb.dataset.head), "model-view");
    });

    let active = null;
    function mark({ layer, head }) {
      if (active) active.classList.remove("active");
      active = thumbs.get(`${layer}-${head}`);
      active.classList.add("active");
      container.dataset.layer = layer;
      container.dataset.head = head;
    }
    state.subscribe(mark);
    mark(state.get());

    const handle = { renderMs: performance.now() - started, preview, hide };
    container.dataset.renderMs = handle.renderMs.toFixed(1);
    handles.set(container, handle);
    return handle;
  }

  window.AtlasModelView = { mount, of: (container) => handles.get(container) };
})();
