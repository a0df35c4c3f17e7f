// The selection shared by every view of a sentence page: one layer and one head (1-based).
// Views call state.select(layer, head) and state.subscribe(fn) (which returns an unsubscribe
// function); fn(selection, source) runs on every change, where source names who changed it ("hash", "keys", "head-view", ...), so a view
// can skip re-drawing for its own changes.
"use strict";
(function () {
  function create(layers, heads, initial = { layer: 1, head: 1 }) {
    const listeners = [];
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
      subscribe(fn) {
        listeners.push(fn);
        return () => {
          const at = listeners.indexOf(fn);
          if (at >= 0) listeners.splice(at, 1);
        };
      },
    };
  }
  window.AtlasState = { create };
})();
