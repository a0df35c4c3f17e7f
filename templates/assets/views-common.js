// Shared by the views of a sentence page (head view, model view, neuron view): one colour per
// head, token classes, small DOM helpers and the level switch (tokens | words). One global:
// AtlasViews.
"use strict";
(function () {
  // One colour per head from the page contract (contract.HEAD_COLOURS: colour-blind safe, see
  // docs/design.md). Heads past those get generated hues, spread by the golden angle, so no two
  // heads of any model share a colour (their H-number tells them apart).
  const palette = () => window.AtlasData.config().colours.heads;

  /** The colour of a head (1-based), the same in every view and for every layer. */
  function headColour(head) {
    const PALETTE = palette();
    if (head >= 1 && head <= PALETTE.length) return PALETTE[head - 1];
    const k = head - PALETTE.length;
    const hue = (k * 137.508 + 15) % 360;
    const light = [40, 30, 50][k % 3];
    return `hsl(${hue.toFixed(1)}, 75%, ${light}%)`;
  }

  /** WCAG relative luminance of a colour ("#rrggbb" or the hsl() of headColour). */
  function luminance(colour) {
    let rgb;
    const hex = /^#([0-9a-f]{6})$/i.exec(colour);
    if (hex) rgb = [0, 2, 4].map((i) => parseInt(hex[1].slice(i, i + 2), 16) / 255);
    else {
      const [h, s, l] = (/hsl\(([\d.]+),\s*([\d.]+)%,\s*([\d.]+)%\)/.exec(colour) || [0, 0, 0, 0]).slice(1).map(Number);
      const a = (s / 100) * Math.min(l / 100, 1 - l / 100);
      const f = (n) => { const k = (n + h / 30) % 12; return l / 100 - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)); };
      rgb = [f(0), f(8), f(4)];
    }
    const [r, g, b] = rgb.map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  /** Black or white: whichever has the higher contrast on a head colour (at least 4.58:1). */
  function inkOn(colour) {
    const y = luminance(colour);
    return 1.05 / (y + 0.05) >= (y + 0.05) / 0.05 ? "#fff" : "#000";
  }

  /** An element with a class and, optionally, text (always as text, never as HTML). */
  function el(tag, className = "", text = null) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== null && text !== undefined) node.textContent = String(text);
    return node;
  }

  /** Fills an element with how token i of a sentence (at either level) reads (atlas/pieces.py):
   * a faint joiner before a piece that continues the word before (class "cont"), its text, and
   * the raw token (or a word's pieces) on hover. AtlasData.tokenLabel is the same as text. */
  function tokenText(node, sentence, i) {
    node.replaceChildren();
    if (sentence.joins[i]) {
      const joiner = el("span", "joiner", window.AtlasData.config().joiner);
      joiner.setAttribute("aria-hidden", "true");
      node.append(joiner);
    }
    node.classList.toggle("cont", Boolean(sentence.joins[i]));
    node.append(sentence.shown[i]);
    node.title = sentence.raw[i];
    // A token the model generated (--generate): marked by the class for the eye and by words
    // for a screen reader.
    const generated = Boolean(sentence.generated && sentence.generated[i]);
    node.classList.toggle("gen", generated);
    if (generated) {
      node.append(el("span", "visually-hidden", " (generated)"));
      node.title += " · generated";
    }
    return node;
  }

  /** "special", "seg-b" or "": the classes the page's token list uses for a token. */
  function tokenClass(sentence, i) {
    if (sentence.special[i]) return "special";
    return sentence.segments[i] === 1 ? "seg-b" : "";
  }

  /** True for a sentence pair (some token in segment B). */
  const isPair = (sentence) => sentence.segments.includes(1);

  /** Heads of the model, 1..heads. */
  const range = (count) => Array.from({ length: count }, (_, i) => i + 1);

  // Each container's current mount. Mounting again must not stack listeners on document and
  // window or subscriptions on the shared state, so everything a mount ties to its signal ends
  // when the next mount on that container starts.
  const lifetimes = new WeakMap();

  /** Ends the previous mount on container and returns the new mount's AbortSignal: pass it to
   * addEventListener(..., {signal}) and follow(). */
  function remount(container) {
    const previous = lifetimes.get(container);
    if (previous) previous.abort();
    const controller = new AbortController();
    lifetimes.set(container, controller);
    return controller.signal;
  }

  /** state.subscribe(fn) until signal aborts. */
  function follow(state, fn, signal) {
    const unsubscribe = state.subscribe(fn);
    signal.addEventListener("abort", unsubscribe, { once: true });
  }

  /** state.subscribeLevel(fn) until signal aborts. */
  function followLevel(state, fn, signal) {
    const unsubscribe = state.subscribeLevel(fn);
    signal.addEventListener("abort", unsubscribe, { once: true });
  }

  /** A group of buttons, one per choice ([value, text, title]), the current one pressed;
   * onChange(value) runs on a click. Returns {element, show(value)} (show presses a value). */
  function choiceSwitch(className, caption, ariaLabel, choices, current, onChange) {
    const group = el("span", className);
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", ariaLabel);
    group.append(el("span", "caption-inline", caption));
    const buttons = choices.map(([value, text, title]) => {
      const button = el("button", "", text);
      button.type = "button";
      button.dataset.value = value;
      button.title = title;
      button.addEventListener("click", () => onChange(value));
      group.append(button);
      return button;
    });
    const show = (value) => {
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.value === value));
    };
    show(current);
    return { element: group, show, buttons };
  }

  /** The level switch "tokens | words" (a choiceSwitch; each button's data-level is its
   * level). */
  function levelSwitch(current, onChange) {
    const made = choiceSwitch("level-switch", "Show ", "Level", [
      ["tokens", "tokens", "Attention between tokens"],
      ["words", "words", "Attention between words (a split word's pieces as one)"],
    ], current, onChange);
    for (const button of made.buttons) button.dataset.level = button.dataset.value;
    return { element: made.element, show: made.show };
  }

  window.AtlasViews = {
    palette, headColour, inkOn, el, tokenText, tokenClass, isPair, range, remount, follow, followLevel, choiceSwitch,
    levelSwitch,
  };
})();
