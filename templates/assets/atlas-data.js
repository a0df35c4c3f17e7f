// The data layer shared by every view: decodes one sentence's attention from its data script
// (ATLAS_CONFIG.paths.data), which sets window[ATLAS_CONFIG.globals.data][key] (a script, since
// file:// pages cannot fetch()). Attention is one byte per value (value × attentionScale),
// laid out [head][from][to] over the heads stored (every head in model order, or only those of
// headsKept), deflated (encoding "deflate", inflated by the browser's DecompressionStream) and
// base64-encoded. Inflating is asynchronous: pages call ready() once, then get() is immediate.
// Queries and keys (the neuron view) are a second script, loaded on demand (loadVectors); their
// layout is in atlas/viewdata.py.
// When the sentence's words are known, the data also holds words, wordOf (per token, its word's
// 0-based index, -1 for none) and, with a tree, arcs ([dependent, head, relation], head -1 for
// the root): the views then show word-level attention (units(), Sentence.unitMatrix, at()).
// Each token also as it reads (shown, joins: written by atlas/pieces.py; tokenLabel()).
// A sentence with every head stored also holds its attention rollout, computed in Python from
// the float attention (rollout: uint16 little-endian [from][to], value × rolloutScale, deflated
// and base64-encoded like the attention; Sentence.rollout, null when not stored).
// A long sentence (more tokens than the contract's SPARSE_FROM) stores each row sparsely
// (top: values kept a row): per head stored, uint16 indices [from][top] (largest value first),
// uint16 remainders [from] (the rest of the row, value × restScale), uint8 values [from][top];
// a dropped value is at most the row's smallest kept value and at most its remainder. Its views
// draw a window of rows (Sentence.at: windowTokens rows from windowStart, and one "other tokens"
// column that gathers the rest of each row) instead of n² lines.
// Every payload carries the data format (format, atlas/contract.py DATA_FORMAT), which must be
// the page config's dataFormat: data of another format is not drawn, and the page says to
// rebuild the site (checkFormat).
// Also the one reader of the page contract, window.ATLAS_CONFIG (assets/config.js, written by
// atlas/contract.py): head names, slugs, labels, file paths. No other script spells these out.
"use strict";
(function () {
  // Every page loads it (deferred) for the search box; a page's views may load it too.
  if (window.AtlasData) return;
  const cache = new Map();

  // Every page whose scripts link to other pages (heads/, sentences/) is one folder deep.
  const PAGE_ROOT = "../";

  /** The page contract (window.ATLAS_CONFIG), loaded before every other script. */
  function config() {
    if (!window.ATLAS_CONFIG) throw new Error("no page config (is assets/config.js loaded?)");
    return window.ATLAS_CONFIG;
  }

  /** [r, g, b] of a "#rrggbb" colour. */
  const rgbOf = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

  /** A colour scale of the page contract, config().colours[name] ("sequential": t in 0..1,
   * "diverging": t in -1..1), as a function t -> [r, g, b], linear between its stops. */
  function colourScale(name) {
    const stops = config().colours[name].map(rgbOf);
    const low = name === "diverging" ? -1 : 0;
    const last = stops.length - 1;
    return (t) => {
      const x = ((Math.max(low, Math.min(1, t)) - low) / (1 - low)) * last;
      const k = Math.min(last - 1, Math.floor(x));
      const f = x - k;
      return stops[k].map((c, i) => Math.round(c + (stops[k + 1][i] - c) * f));
    };
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
  // model "B": model B's label in a compare atlas (its own pattern, not A's)
  const headLabel = (layer, head, model = "A") => headInfo(layer, head)[model === "B" ? "labelB" : "label"];
  const labelClass = (layer, head, model = "A") => headInfo(layer, head)[model === "B" ? "labelClassB" : "labelClass"];

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

  /** The bytes of a payload: base64, deflated when encoding is "deflate". Resolves to a
   * Uint8Array. */
  async function payloadBytes(text, encoding) {
    const bytes = decodeBase64(text);
    if (!encoding) return bytes;
    if (encoding !== "deflate") throw new Error(`unknown data encoding ${encoding}`);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** An IEEE half-precision number from its 16 bits (scales and offsets of queries and keys). */
  function half(bits) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) return sign * fraction * 2 ** -24;
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }

  /**
   * Queries and keys from their inflated bytes (atlas/viewdata.py): uint8 bits per block
   * (2·L·H blocks: queries, then keys, model order), then per block float16 scale[d] and
   * offset[d], then int8 or int16 values [n][d]; value = raw × scale + offset. Returns
   * {q, k}: Float32Array [layer][head][token][dim] each.
   */
  function decodeVectors(bytes, layers, heads, n, d) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const blocks = 2 * layers * heads;
    const out = new Float32Array(blocks * n * d);
    let at = blocks;
    for (let block = 0; block < blocks; block++) {
      const wide = bytes[block] === 16;
      const scale = [], offset = [];
      for (let x = 0; x < d; x++) {
        scale.push(half(view.getUint16(at + 2 * x, true)));
        offset.push(half(view.getUint16(at + 2 * (d + x), true)));
      }
      at += 4 * d;
      for (let i = 0; i < n * d; i++) {
        const raw = wide ? view.getInt16(at + 2 * i, true) : view.getInt8(at + i);
        out[block * n * d + i] = raw * scale[i % d] + offset[i % d];
      }
      at += (wide ? 2 : 1) * n * d;
    }
    if (at !== bytes.length) throw new Error(`queries and keys: ${bytes.length} bytes, expected ${at}`);
    const split = (blocks / 2) * n * d;
    return { q: out.subarray(0, split), k: out.subarray(split) };
  }

  /** The stored rollout from its bytes (uint16 little-endian, value × rolloutScale, [n][n]):
   * Float64Array n*n, row = the token whose last-layer vector it is. */
  function rolloutValues(bytes, n, key) {
    if (bytes.length !== 2 * n * n) throw new Error(`sentence ${key}: ${bytes.length} rollout bytes, expected ${2 * n * n}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const scale = config().rolloutScale;
    const out = new Float64Array(n * n);
    for (let i = 0; i < n * n; i++) out[i] = view.getUint16(2 * i, true) / scale;
    return out;
  }

  /** Sparse rows from their bytes (layout above), for `count` heads: {index: Uint16Array,
   * rest: Float32Array, value: Uint8Array}, [head][from][top] and [head][from]. */
  function decodeSparse(bytes, count, n, top, key) {
    const perHead = n * (3 * top + 2);
    if (bytes.length !== count * perHead) throw new Error(`sentence ${key}: ${bytes.length} attention bytes, expected ${count * perHead}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const index = new Uint16Array(count * n * top);
    const rest = new Float32Array(count * n);
    const value = new Uint8Array(count * n * top);
    const restScale = config().restScale;
    for (let h = 0; h < count; h++) {
      let at = h * perHead;
      for (let e = 0; e < n * top; e++, at += 2) index[h * n * top + e] = view.getUint16(at, true);
      for (let i = 0; i < n; i++, at += 2) rest[h * n + i] = view.getUint16(at, true) / restScale;
      value.set(bytes.subarray(at, at + n * top), h * n * top);
    }
    return { index, rest, value };
  }

  /**
   * The units of a sentence (the contract, defined identically in Python): walk the tokens in
   * order; a token with wordOf -1 is a unit of its own (labelled with the token); a token whose
   * wordOf differs from the previous token's starts a new unit labelled words[wordOf]; otherwise
   * it joins the current unit. Returns [{label, tokens: [token indices], word: index or -1}].
   */
  function units(tokens, words, wordOf) {
    const out = [];
    let previous = null;
    tokens.forEach((token, t) => {
      const w = wordOf[t];
      if (w !== -1 && w === previous) out[out.length - 1].tokens.push(t);
      else out.push({ label: w === -1 ? token : words[w], tokens: [t], word: w });
      previous = w;
    });
    return out;
  }

  /** Word-level attention over units: W[u][v] = mean over tokens t of u of the sum over tokens
   * s of v of A[t][s] (TO a unit: the sum over its pieces; FROM it: the mean of their rows). */
  function unitAttention(matrix, n, unitList, unitOf) {
    const count = unitList.length;
    const sums = new Float64Array(count * count);
    for (let t = 0; t < n; t++) {
      const row = unitOf[t] * count;
      const share = 1 / unitList[unitOf[t]].tokens.length;
      for (let s = 0; s < n; s++) sums[row + unitOf[s]] += matrix[t * n + s] * share;
    }
    return Float32Array.from(sums);
  }

  /** How token i of a sentence at either level reads where only text can go (a canvas, an
   * <option>, a tooltip): its shown text, after the joiner when it continues the word before
   * (AtlasViews.tokenText does the same for elements). */
  function tokenLabel(sentence, i) {
    return sentence.joins[i] ? config().joiner + sentence.shown[i] : sentence.shown[i];
  }

  class Sentence {
    /** raw: the data script's payload; bytes: its attention, decoded (payloadBytes);
     * rolloutBytes: its rollout's, or null when it has none. */
    constructor(raw, bytes, rolloutBytes = null) {
      this.key = raw.key;
      this.tokens = raw.tokens;
      // How each token reads (atlas/pieces.py, in the data script): its text without subword
      // markers, whether it continues the word before, and the raw token for hover.
      this.shown = raw.shown || raw.tokens;
      this.joins = raw.joins || raw.tokens.map(() => 0);
      this.raw = raw.tokens;
      this.segments = raw.segments;
      this.special = raw.special;
      // 1 for each token the model generated after the prompt (--generate); all 0 without.
      this.generated = raw.generated || raw.tokens.map(() => 0);
      this.layers = raw.layers;
      this.heads = raw.heads;
      this.causal = raw.causal;
      this.n = raw.tokens.length;
      this.scale = config().attentionScale;
      this.level = "tokens";
      this.bytes = bytes;
      // Where each head's attention starts in bytes: every head, or only those of headsKept.
      const all = this.layers * this.heads;
      const kept = Array.isArray(raw.headsKept) ? raw.headsKept : [...Array(all).keys()];
      this.block = new Int32Array(all).fill(-1);
      kept.forEach((flat, i) => { this.block[flat] = i; });
      this.allHeads = kept.length === all;
      // Sparse rows (a long sentence): the values kept a row, 0 when stored dense [n][n].
      this.top = raw.top || 0;
      this.windowStart = 0;
      if (this.top) this.sparse = decodeSparse(bytes, kept.length, this.n, this.top, this.key);
      const expected = kept.length * (this.top ? this.n * (3 * this.top + 2) : this.n * this.n);
      if (this.bytes.length !== expected) {
        throw new Error(`sentence ${this.key}: ${this.bytes.length} attention values, expected ${expected}`);
      }
      // The attention rollout at the last layer (Float64Array n*n), null when not stored.
      this.rollout = rolloutBytes ? rolloutValues(rolloutBytes, this.n, this.key) : null;
      // Queries and keys for the neuron view live in the vectors script, loaded on demand by
      // loadVectors() (or inlined in neuron.vectors, in hand-made data).
      const neuron = raw.neuron || { available: false, note: "no queries and keys in this data" };
      this.neuronNote = neuron.note || "";
      this.headDim = neuron.head_dim;
      this.vectorsAvailable = Boolean(neuron.available);
      this.scores = neuron.scores || null;
      this.hasVectors = false;
      this._inlineVectors = neuron.vectors ? neuron : null;
      this._initWords(raw);
    }

    /** Whether the attention of this head (1-based) is stored: every head, on a sentence page. */
    hasHead(layer, head) {
      return this.block[(layer - 1) * this.heads + (head - 1)] >= 0;
    }

    /** The offset of a head's n×n attention in bytes; throws for a head not stored. */
    _start(layer, head) {
      const block = this.block[(layer - 1) * this.heads + (head - 1)];
      if (block === undefined || block < 0) throw new Error(`sentence ${this.key}: no attention stored for L${layer}-H${head}`);
      return block * this.n * this.n;
    }

    /** hasWords, words, units (one per token when the words are unknown), unitOf (token ->
     * unit), unitOfWord (word -> its first unit) and arcs ([] without a tree). */
    _initWords(raw) {
      // A long sentence's views draw windows of tokens, not words (word rows would need every
      // row at once).
      this.hasWords = !this.top && Array.isArray(raw.words) && Array.isArray(raw.wordOf) && raw.wordOf.length === this.n;
      this.words = this.hasWords ? raw.words : [];
      this.units = this.hasWords
        ? units(this.tokens, raw.words, raw.wordOf)
        : this.tokens.map((label, t) => ({ label, tokens: [t], word: -1 }));
      this.unitOf = new Int32Array(this.n);
      this.unitOfWord = new Map();
      this.units.forEach((unit, u) => {
        for (const t of unit.tokens) this.unitOf[t] = u;
        if (unit.word !== -1 && !this.unitOfWord.has(unit.word)) this.unitOfWord.set(unit.word, u);
      });
      this.arcs = this.hasWords && Array.isArray(raw.arcs) ? raw.arcs : [];
      this._unitMatrices = new Map();
    }

    /** Word-level attention of one head (see unitAttention) as Float32Array u*u, row = from;
     * computed once per head (do not modify it). Without words, units are tokens. */
    unitMatrix(layer, head) {
      const key = `${layer}-${head}`;
      if (!this._unitMatrices.has(key)) {
        this._unitMatrices.set(key, unitAttention(this.matrix(layer, head), this.n, this.units, this.unitOf));
      }
      return this._unitMatrices.get(key);
    }

    /** The sentence at a level, "tokens" or "words", for the views: an object with the
     * attention interface of a Sentence (level, n, tokens: the labels, special, segments,
     * layers, heads, matrix(), value()). Without words, or for "tokens": the sentence itself. */
    at(level) {
      if (this.top) return this.window(this.windowStart);
      if (level !== "words" || !this.hasWords) return this;
      if (!this._wordLevel) this._wordLevel = wordLevel(this);
      return this._wordLevel;
    }

    async _decodeVectors(raw) {
      const bytes = await payloadBytes(raw.vectors, raw.encoding);
      const { q, k } = decodeVectors(bytes, this.layers, this.heads, this.n, this.headDim);
      this._q = q;
      this._k = k;
      this.hasVectors = true;
      return this;
    }

    /** Resolves once queries and keys are decoded, loading the vectors script
     * (config().paths.vectors) from the folder the data script came from. */
    loadVectors() {
      if (this.hasVectors) return Promise.resolve(this);
      if (!this.vectorsAvailable) return Promise.reject(new Error(this.neuronNote || "no queries and keys"));
      if (!this._loading) {
        const raw = this._inlineVectors ? Promise.resolve(this._inlineVectors) : loadVectorsScript(this.key);
        this._loading = raw.then((r) => this._decodeVectors(r));
      }
      return this._loading;
    }

    _vectors(values, layer, head) {
      const d = this.headDim;
      const first = ((layer - 1) * this.heads + (head - 1)) * this.n;
      const out = [];
      for (let t = 0; t < this.n; t++) out.push(values.subarray((first + t) * d, (first + t + 1) * d));
      return out;
    }

    /** How a layer (1-based) turns queries and keys into attention (contract.SCORES_FIELDS,
     * atlas/scores.py): {scale, softcap, window}, softcap and window null where the layer has
     * none; softmax(q·k/√d) where the data does not say. */
    scoring(layer) {
      const at = (name) => {
        const list = this.scores && this.scores[name];
        return list && list[layer - 1] != null ? list[layer - 1] : null;
      };
      return { scale: at("scale") ?? 1 / Math.sqrt(this.headDim), softcap: at("softcap"), window: at("window") };
    }

    /** Query vectors of one head: an array of n Float32Array(headDim), or null if not kept. */
    queries(layer, head) {
      return this.hasVectors ? this._vectors(this._q, layer, head) : null;
    }

    /** Key vectors of one head, as queries(). */
    keys(layer, head) {
      return this.hasVectors ? this._vectors(this._k, layer, head) : null;
    }

    /** Attention of one head (1-based layer and head) as Float32Array n*n, row = from; sparse
     * rows give their kept values and 0 elsewhere. */
    matrix(layer, head) {
      const size = this.n * this.n;
      const out = new Float32Array(size);
      if (this.top) {
        for (let i = 0; i < this.n; i++) {
          const { index, value } = this.row(layer, head, i);
          index.forEach((j, e) => { out[i * this.n + j] = value[e]; });
        }
        return out;
      }
      const start = this._start(layer, head);
      for (let i = 0; i < size; i++) out[i] = this.bytes[start + i] / this.scale;
      return out;
    }

    /** One value without building a matrix: attention from token i to token j (a dropped
     * value of a sparse row reads 0). */
    value(layer, head, i, j) {
      if (this.top) {
        const { index, value } = this.row(layer, head, i);
        const e = index.indexOf(j);
        return e < 0 ? 0 : value[e];
      }
      return this.bytes[this._start(layer, head) + i * this.n + j] / this.scale;
    }

    /** Row i of a sparse head as stored: {index: its kept columns, largest value first, value:
     * their values, rest: the remainder of the row}. */
    row(layer, head, i) {
      const block = this._start(layer, head) / (this.n * this.n);
      const at = (block * this.n + i) * this.top;
      const value = Array.from(this.sparse.value.subarray(at, at + this.top), (v) => v / this.scale);
      return { index: this.sparse.index.subarray(at, at + this.top), value, rest: this.sparse.rest[block * this.n + i] };
    }

    /** The window of a long sentence the views draw (cached by start): `windowTokens` tokens
     * from `start` and one last "other tokens" column (its index: aggregate), each row's
     * attention outside the window (kept values outside and the remainder); its own row is
     * empty. */
    window(start) {
      if (this._window && this._window.start === start) return this._window;
      const size = Math.min(config().windowTokens, this.n - start);
      const end = start + size;
      const n = size + 1;
      const pick = (list, last) => [...list.slice(start, end), last];
      const matrices = new Map();
      const matrix = (layer, head) => {
        const key = `${layer}-${head}`;
        if (!matrices.has(key)) {
          const out = new Float32Array(n * n);
          for (let i = 0; i < size; i++) {
            const { index, value, rest } = this.row(layer, head, start + i);
            let outside = rest;
            index.forEach((j, e) => {
              if (j >= start && j < end) out[i * n + j - start] = value[e];
              else outside += value[e];
            });
            out[i * n + size] = outside;
          }
          matrices.set(key, out);
        }
        return matrices.get(key);
      };
      const label = `other ${this.n - size} tokens`;
      this._window = {
        level: "tokens", key: this.key, layers: this.layers, heads: this.heads, causal: this.causal,
        start, end, total: this.n, n, aggregate: size,
        tokens: pick(this.tokens, label), shown: pick(this.shown, label), joins: pick(this.joins, 0),
        raw: pick(this.raw, label), special: pick(this.special, 1), segments: pick(this.segments, -1),
        matrix, value: (layer, head, i, j) => matrix(layer, head)[i * n + j],
      };
      return this._window;
    }
  }

  /** The word level of a sentence (Sentence.at("words")): one row per unit; a unit's segment
   * and specialness are its first token's. */
  function wordLevel(sentence) {
    const first = sentence.units.map((unit) => unit.tokens[0]);
    const n = sentence.units.length;
    return {
      level: "words",
      key: sentence.key,
      layers: sentence.layers,
      heads: sentence.heads,
      causal: sentence.causal,
      n,
      tokens: sentence.units.map((unit) => unit.label),
      shown: sentence.units.map((unit) => unit.label),
      joins: sentence.units.map(() => 0),
      raw: sentence.units.map((unit) => unit.tokens.map((t) => sentence.tokens[t]).join(" ")),
      special: first.map((t) => sentence.special[t]),
      generated: first.map((t) => sentence.generated[t]),
      segments: first.map((t) => sentence.segments[t]),
      matrix: (layer, head) => sentence.unitMatrix(layer, head),
      value: (layer, head, i, j) => sentence.unitMatrix(layer, head)[i * n + j],
    };
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

  /** The payload of a sentence's vectors script, loading the script once. */
  function loadVectorsScript(key) {
    return new Promise((resolve, reject) => {
      const loaded = () => (window[config().globals.vectors] || {})[key];
      if (loaded()) return checkFormat(loaded(), `the queries and keys of sentence ${key}`) ? resolve(loaded()) : reject(new Error(`sentence ${key}: vectors of another format`));
      const script = document.createElement("script");
      script.src = vectorsSrc(key);
      script.onload = () => {
        if (!loaded()) return reject(new Error(`${script.src} holds no vectors for ${key}`));
        if (!checkFormat(loaded(), `the queries and keys of sentence ${key}`)) return reject(new Error(`sentence ${key}: vectors of another format`));
        resolve(loaded());
      };
      script.onerror = () => reject(new Error(`could not load ${script.src}`));
      document.head.append(script);
    });
  }

  const rawData = (key) => (window[config().globals.data] || {})[key];

  /** Whether page data (a data script's payload, the search index) is of the format these
   * pages read (config().dataFormat, atlas/contract.py DATA_FORMAT); if not, says so on the page
   * (once) and in the console, and the caller draws nothing: data of another atlas version would
   * draw wrong, not fail. */
  function checkFormat(raw, what) {
    const expected = config().dataFormat;
    if (raw && raw.format === expected) return true;
    const found = raw && raw.format !== undefined ? `format ${raw.format}` : "no data format";
    const message = `This page's data (${what}) has ${found}; these pages read format ${expected}. ` +
      "The site mixes files of two atlas versions: rebuild it (atlas build, or atlas render of its atlas.json).";
    console.error(message);
    if (!document.getElementById("atlas-data-format")) {
      const note = document.createElement("p");
      note.id = "atlas-data-format";
      note.className = "data-format-error";
      note.setAttribute("role", "alert");
      note.textContent = message;
      (document.querySelector("main") || document.body).prepend(note);
    }
    return false;
  }

  /** A data script's payload, refused (an Error, and the page's message) if of another format. */
  function checked(key, raw) {
    if (!checkFormat(raw, `sentence ${key}`)) throw new Error(`sentence ${key}: data of another format`);
    return raw;
  }

  /** Resolves once every sentence whose data script the page has loaded is decoded, so that
   * get() can return it at once. Call it before get() (data without an encoding, as hand-made
   * test pages have, needs no waiting). */
  function ready() {
    const keys = Object.keys(window[config().globals.data] || {}).filter((key) => !cache.has(key));
    return Promise.all(keys.map(async (key) => {
      const raw = checked(key, rawData(key));
      const [bytes, rollout] = await Promise.all([
        payloadBytes(raw.attention, raw.encoding),
        raw.rollout ? payloadBytes(raw.rollout, raw.encoding) : null,
      ]);
      if (!cache.has(key)) cache.set(key, new Sentence(raw, bytes, rollout));
    }));
  }

  /** The sentence whose data script set ATLAS_DATA[key] (config().globals.data), once ready()
   * has decoded it. */
  /** The first generated token of a sentence at either level (0-based), or -1 for a sentence
   * without a generation: the prompt is every token before it. */
  function promptEnd(sentence) {
    return (sentence.generated || []).indexOf(1);
  }

  /** Words a screen reader hears after a view's name: where the model's generation starts
   * ("" for a sentence without one). */
  function generationNote(sentence) {
    const start = promptEnd(sentence);
    if (start < 0) return "";
    const unit = sentence.level === "words" ? "units" : "tokens";
    return `; ${unit} 1 to ${start} are the prompt, ${start + 1} to ${sentence.n} the model's generation`;
  }

  function get(key) {
    if (!cache.has(key)) {
      const raw = rawData(key);
      if (!raw) {
        const script = url(config().paths.data, { key });
        throw new Error(`no attention data for sentence ${key} (is ${script} loaded?)`);
      }
      checked(key, raw);
      if (raw.encoding) throw new Error(`sentence ${key} is not decoded yet (wait for AtlasData.ready())`);
      cache.set(key, new Sentence(raw, decodeBase64(raw.attention), raw.rollout ? decodeBase64(raw.rollout) : null));
    }
    return cache.get(key);
  }

  window.AtlasData = {
    ready, get, checkFormat, units, tokenLabel, promptEnd, generationNote, config, colourScale, headInfo, headName, headSlug, headLabel, labelClass, parseHead, url, href, headHref,
  };
})();
