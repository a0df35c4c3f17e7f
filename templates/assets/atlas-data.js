// The data layer shared by every view: decodes one sentence's attention from its data script
// (ATLAS_CONFIG.paths.data), which sets window[ATLAS_CONFIG.globals.data][key] (a script, since
// file:// pages cannot fetch()). Attention is one byte per value (value × attentionScale) in
// base64, laid out [layer][head][from][to].
// Also the one reader of the page contract, window.ATLAS_CONFIG (assets/config.js, written by
// atlas/contract.py): head names, slugs, labels, file paths. No other script spells these out.
"use strict";
(function () {
  const cache = new Map();

  // Every page whose scripts link to other pages (heads/, sentences/) is one folder deep.
  const PAGE_ROOT = "../";

  /** The page contract (window.ATLAS_CONFIG), loaded before every other script. */
  function config() {
    if (!window.ATLAS_CONFIG) throw new Error("no page config (is assets/config.js loaded?)");
    return window.ATLAS_CONFIG;
  }

  /** A head's entry of config().headList: {name, slug, label, labelClass}. */
  function headInfo(layer, head) {
    const c = config();
    const info = layer >= 1 && layer <= c.layers && head >= 1 && head <= c.heads
      ? c.headList[(layer - 1) * c.heads + (head - 1)] : null;
    if (!info) throw new Error(`no head L${layer}-H${head} in this model`);
    return info;
  }

  const headName = (layer, head) => headInfo(layer, head).name;
  const headSlug = (layer, head) => headInfo(layer, head).slug;
  const headLabel = (layer, head) => headInfo(layer, head).label;
  const labelClass = (layer, head) => headInfo(layer, head).labelClass;

  /** "L9-H6", "#L9-H6" or a slug ("L09-H06") -> {layer: 9, head: 6}, or null if no head of
   * the model has that name. */
  function parseHead(text) {
    const c = config();
    const wanted = (text || "").replace(/^#/, "");
    const index = c.headList.findIndex((h) => h.name === wanted || h.slug === wanted);
    return index < 0 ? null : { layer: Math.floor(index / c.heads) + 1, head: (index % c.heads) + 1 };
  }

  /** A path template of config().paths filled in: url("data/{key}.js", {key: "0001"}). */
  function url(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, name) => {
      if (!(name in values)) throw new Error(`${template}: no value for {${name}}`);
      return String(values[name]);
    });
  }

  /** url() as a link from the current page (one folder below the site's root). */
  const href = (template, values) => PAGE_ROOT + url(template, values);

  /** The page of a head, linked from the current page. */
  const headHref = (layer, head) => href(config().paths.headPage, { slug: headSlug(layer, head) });

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
      this.scale = config().attentionScale;
      this.bytes = decodeBase64(raw.attention);
      const expected = this.layers * this.heads * this.n * this.n;
      if (this.bytes.length !== expected) {
        throw new Error(`sentence ${this.key}: ${this.bytes.length} attention values, expected ${expected}`);
      }
      // Queries and keys for the neuron view live in the vectors script, loaded on demand by
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

    /** Resolves once queries and keys are decoded, loading the vectors script (config().paths.vectors)
     * from the folder the data script came from. */
    loadVectors() {
      if (this.hasVectors) return Promise.resolve(this);
      if (!this.vectorsAvailable) return Promise.reject(new Error(this.neuronNote || "no queries and keys"));
      if (!this._loading) {
        this._loading = new Promise((resolve, reject) => {
          const ready = () => {
            const raw = (window[config().globals.vectors] || {})[this.key];
            if (raw) {
              this._decodeVectors(raw);
              resolve(this);
            }
            return Boolean(raw);
          };
          if (ready()) return;
          const script = document.createElement("script");
          script.src = vectorsSrc(this.key);
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
      for (let i = 0; i < size; i++) out[i] = this.bytes[start + i] / this.scale;
      return out;
    }

    /** One value without building a matrix: attention from token i to token j. */
    value(layer, head, i, j) {
      const n = this.n;
      return this.bytes[((layer - 1) * this.heads + (head - 1)) * n * n + i * n + j] / this.scale;
    }
  }

  /** Where a sentence's vectors script is: beside its data script if the page loaded that from
   * the contract's path (whatever the page's depth), else from the site's root. */
  function vectorsSrc(key) {
    const { paths } = config();
    const data = url(paths.data, { key });
    const own = [...document.scripts].find((s) => s.src.endsWith(`/${data}`));
    const root = own ? own.src.slice(0, -data.length) : PAGE_ROOT;
    return root + url(paths.vectors, { key });
  }

  /** The sentence whose data script set ATLAS_DATA[key] (config().globals.data); decoded once. */
  function get(key) {
    if (!cache.has(key)) {
      const raw = (window[config().globals.data] || {})[key];
      if (!raw) {
        const script = url(config().paths.data, { key });
        throw new Error(`no attention data for sentence ${key} (is ${script} loaded?)`);
      }
      cache.set(key, new Sentence(raw));
    }
    return cache.get(key);
  }

  window.AtlasData = {
    get, config, headInfo, headName, headSlug, headLabel, labelClass, parseHead, url, href, headHref,
  };
})();
