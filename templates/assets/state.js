// The selection shared by every view of a sentence page: one layer and one head (1-based).
// Views call state.select(layer, head) and state.subscribe(fn) (which returns an unsubscribe
// function); fn(selection, source) runs on every change, where source names who changed it ("hash", "keys", "head-view", ...), so a view
// can skip re-drawing for its own changes.
// It also holds the level every view of the page shows, "words" (the default; views of a
// sentence whose words are unknown show tokens all the same) or "tokens": state.level(),
// state.setLevel(level, source), state.subscribeLevel(fn) -> unsubscribe; fn(level, source).
"use strict";
(function () {
  function create(layers, heads, initial = { layer: 1, head: 1 }) {
    const listeners = [];
    const levelListeners = [];
    let level = initial.level === "tokens" ? "tokens" : "words";
    const clamp = (v, max) => Math.min(Math.max(1, v), max);
    let current = { layer: clamp(initial.layer, layers), head: clamp(initial.head, heads) };
    return {
      layers,
      heads,
      get: () => ({ ...current }),
      select(layer, head, source = "") {
        const next = { layer: clamp(layer, layers), head: clamp(head, heads) };
        if (next.layer === current.layer && next.head === current.head) return;
        current = next;
        for (const fn of [...listeners]) fn({ ...current }, source); // a copy: fn may unsubscribe
      },
      /** Calls fn(selection, source) on every change; returns a function that stops that. */
      subscribe: (fn) => listen(listeners, fn),
      level: () => level,
      setLevel(next, source = "") {
        if (next === level || (next !== "words" && next !== "tokens")) return;
        level = next;
        for (const fn of [...levelListeners]) fn(level, source);
      },
      /** Calls fn(level, source) on every change of level; returns a function that stops that. */
      subscribeLevel: (fn) => listen(levelListeners, fn),
    };
  }

  /** Adds fn to listeners; returns the function that removes it. */
  function listen(listeners, fn) {
    listeners.push(fn);
    return () => {
      const at = listeners.indexOf(fn);
      if (at >= 0) listeners.splice(at, 1);
    };
  }
  window.AtlasState = { create };
})();
