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
      // Queries and keys for the neuron view live in data/KEY.qk.js, loaded on demand by
      // loadVectors(): int16 [layer][head][token][dim] with one float32 scale per vector
      // [layer][head][token]; value = int16 × scale.
      const neuron = raw.neuron || { available: false, note: "no queries and keys in this data" };
      this.neuronNote = neuron.note || "";
      this.headDim = neuron.head_dim;
      this.vectorsAvailable = Boolean(neuron.available);
      this.hasVectors = false;
      if (neuron.query) this._decodeVectors(neuron); // inlined (hand-made data)
    }

    _decodeVectors(raw) {
      this._q = new Int16Array(decodeBase64(raw.query).buffer);
      this._k = new Int16Array(decodeBase64(raw.key).buffer);
      this._qScale = new Float32Array(decodeBase64(raw.query_scale).buffer);
      this._kScale = new Float32Array(decodeBase64(raw.key_scale).buffer);
      this.hasVectors = true;
    }

    /** Resolves once queries and keys are decoded, loading data/KEY.qk.js beside data/KEY.js. */
    loadVectors() {
      if (this.hasVectors) return Promise.resolve(this);
      if (!this.vectorsAvailable) return Promise.reject(new Error(this.neuronNote || "no queries and keys"));
      if (!this._loading) {
        this._loading = new Promise((resolve, reject) => {
          const ready = () => {
            const raw = (window.ATLAS_VECTORS || {})[this.key];
            if (raw) {
              this._decodeVectors(raw);
              resolve(this);
            }
            return Boolean(raw);
          };
          if (ready()) return;
          const own = [...document.scripts].find((s) => s.src.endsWith(`data/${this.key}.js`));
          const script = document.createElement("script");
          script.src = own ? own.src.replace(/\.js$/, ".qk.js") : `../data/${this.key}.qk.js`;
          script.onload = () => ready() || reject(new Error(`${script.src} holds no vectors for ${this.key}`));
          script.onerror = () => reject(new Error(`could not load ${script.src}`));
          document.head.append(script);
        });
      }
      return this._loading;
    }

    _vectors(values, scales, layer, head) {
      const d = this.headDim;
      const first = ((layer - 1) * this.heads + (head - 1)) * this.n;
      const out = [];
      for (let t = 0; t < this.n; t++) {
        const v = new Float32Array(d);
        const scale = scales[first + t];
        const start = (first + t) * d;
        for (let i = 0; i < d; i++) v[i] = values[start + i] * scale;
        out.push(v);
      }
      return out;
    }

    /** Query vectors of one head: an array of n Float32Array(headDim), or null if not kept. */
    queries(layer, head) {
      return this.hasVectors ? this._vectors(this._q, this._qScale, layer, head) : null;
    }

    /** Key vectors of one head, as queries(). */
    keys(layer, head) {
      return this.hasVectors ? this._vectors(this._k, this._kScale, layer, head) : null;
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
