// The data layer shared by every view: decodes one sentence's attention from data/NNNN.js.
// data/NNNN.js sets window.ATLAS_DATA[key] (a script, since file:// pages cannot fetch()).
// Attention is uint8 (value × 255) in base64, laid out [layer][head][from][to].
"use strict";
(function () {
  const cache = new Map();

  function decodeBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  class Sentence {
    constructor(raw) {
      this.key = raw.key;
      this.tokens = raw.tokens;
      this.segments = raw.segments;
      this.special = raw.special;
      this.layers = raw.layers;
      this.heads = raw.heads;
      this.causal = raw.causal;
      this.n = raw.tokens.length;
      this.bytes = decodeBase64(raw.attention);
      const expected = this.layers * this.heads * this.n * this.n;
      if (this.bytes.length !== expected) {
        throw new Error(`sentence ${this.key}: ${this.bytes.length} attention values, expected ${expected}`);
      }
    }

    /** Attention of one head (1-based layer and head) as Float32Array n*n, row = from. */
    matrix(layer, head) {
      const size = this.n * this.n;
      const start = ((layer - 1) * this.heads + (head - 1)) * size;
      const out = new Float32Array(size);
      for (let i = 0; i < size; i++) out[i] = this.bytes[start + i] / 255;
      return out;
    }

    /** One value without building a matrix: attention from token i to token j. */
    value(layer, head, i, j) {
      const n = this.n;
      return this.bytes[((layer - 1) * this.heads + (head - 1)) * n * n + i * n + j] / 255;
    }
  }

  /** The sentence whose data script set ATLAS_DATA[key]; decoded once. */
  function get(key) {
    if (!cache.has(key)) {
      const raw = (window.ATLAS_DATA || {})[key];
      if (!raw) throw new Error(`no attention data for sentence ${key} (is data/${key}.js loaded?)`);
      cache.set(key, new Sentence(raw));
    }
    return cache.get(key);
  }

  /** "L9-H6" -> {layer: 9, head: 6}, or null. */
  function parseHead(text) {
    const m = /^#?L(\d+)-H(\d+)$/.exec(text || "");
    return m ? { layer: Number(m[1]), head: Number(m[2]) } : null;
  }

  const pad2 = (v) => String(v).padStart(2, "0");
  const headName = (layer, head) => `L${layer}-H${head}`;
  const headSlug = (layer, head) => `L${pad2(layer)}-H${pad2(head)}`;

  window.AtlasData = { get, parseHead, headName, headSlug };
})();
