// The search box in every page's header (templates/base.html). It finds heads by name ("L3-H7"),
// pattern label ("prev", "[CLS]") or head type ("induction", "sink"), at once from the page config, the heads highest on a
// catalogue column named by the query ("[SEP]", "entropy") and its entry on the Definitions page,
// and sentences containing every word
// of the query (whole words, any case). Columns and sentences come from the search index
// (ATLAS_CONFIG.paths.search: a script, since file:// pages cannot fetch), loaded the first time
// the box gets the focus. A WAI-ARIA combobox: the arrow keys move through the listbox of
// results, Enter opens the one chosen (or the first), Escape closes the list, then clears.
"use strict";
(function () {
  const LIMITS = { heads: 6, definitions: 3, sentences: 8 };
  const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;
  const SNIPPET = 90; // characters of a sentence shown around its first match

  const words = (text) => (text || "").toLowerCase().match(WORD) || [];
  // Text as words joined by single spaces: "[CLS] + previous" -> "cls previous".
  const plain = (text) => words(text).join(" ");

  /** The index once its script has loaded: the raw lists plus word -> sentence positions. */
  function buildIndex(raw) {
    const byWord = new Map();
    raw.sentences.forEach((row, position) => {
      for (const word of new Set(words(`${row[1]} ${row[2] || ""}`))) {
        if (!byWord.has(word)) byWord.set(word, []);
        byWord.get(word).push(position);
      }
    });
    return { sentences: raw.sentences, columns: raw.columns, byWord };
  }

  /** Loads the index script once; resolves to the index (null if it cannot be loaded). */
  function loader(root) {
    let promise = null;
    return () => {
      if (promise) return promise;
      const { paths, globals } = window.AtlasData.config();
      promise = new Promise((resolve) => {
        const script = document.createElement("script");
        script.src = root + paths.search;
        script.onload = () => {
          const raw = window[globals.search];
          resolve(raw && window.AtlasData.checkFormat(raw, "the search index") ? buildIndex(raw) : null);
        };
        script.onerror = () => resolve(null);
        document.head.append(script);
      });
      return promise;
    };
  }

  function headHit(root, info, detail) {
    const { url, config } = window.AtlasData;
    return { kind: "head", name: info.name, label: info.label, labelClass: info.labelClass,
      detail, href: root + url(config().paths.headPage, { slug: info.slug }) };
  }

  /** Heads whose name starts with the query, then heads with a word of their label or of a
   * type starting with it (a type is named in the hit's detail). */
  function findHeads(root, query) {
    const q = plain(query);
    if (!q) return [];
    const list = window.AtlasData.config().headList;
    const named = list.filter((h) => plain(h.name).startsWith(q) || plain(h.slug).startsWith(q));
    named.sort((a, b) => (plain(b.name) === q) - (plain(a.name) === q));
    const types = (h) => (h.types || []).filter((type) => ` ${plain(type)}`.includes(` ${q}`));
    const labelled = list.filter((h) => !named.includes(h)
      && (` ${plain(h.label)}`.includes(` ${q}`) || types(h).length));
    return [...named, ...labelled].map((h) => headHit(root, h, types(h).join(", ")));
  }

  /** The top heads of each catalogue column whose title starts with the query. */
  function findTop(root, index, query) {
    const q = plain(query);
    if (!q || !index) return [];
    return index.columns
      .filter(([title]) => plain(title).startsWith(q))
      .flatMap(([title, top]) => top.map(([name, value], rank) => {
        const head = window.AtlasData.parseHead(name);
        const info = window.AtlasData.headInfo(head.layer, head.head);
        return { ...headHit(root, info, `${ordinal(rank + 1)} highest on ${title}: ${value.toFixed(3)}`), top: title };
      }));
  }

  /** The Definitions page's entries of the catalogue columns whose title or key starts with
   * the query (their formula and paper). */
  function findDefinitions(root, index, query) {
    const q = plain(query);
    if (!q || !index) return [];
    const page = window.AtlasData.config().paths.definitions;
    return index.columns
      .filter(([title, , key]) => key && (plain(title).startsWith(q) || plain(key).startsWith(q)))
      .map(([title, , key, description]) => ({ kind: "definition", name: title, detail: description,
        href: `${root}${page}#${key}` }));
  }

  function ordinal(n) {
    return `${n}${["th", "st", "nd", "rd"][n] || "th"}`;
  }

  /** Positions of the sentences holding every word of the query, in corpus order. */
  function findSentences(index, query) {
    const wanted = [...new Set(words(query))];
    if (!index || !wanted.length) return [];
    const lists = wanted.map((w) => index.byWord.get(w) || []).sort((a, b) => a.length - b.length);
    const others = lists.slice(1).map((list) => new Set(list));
    return lists[0].filter((position) => others.every((set) => set.has(position)));
  }

  function sentenceHit(root, index, position, query) {
    const [key, text, textB, page] = index.sentences[position];
    const { url, config } = window.AtlasData;
    const { paths } = config();
    return { kind: "sentence", key, page: Boolean(page), text: textB ? `${text} ⇥ ${textB}` : text,
      words: new Set(words(query)),
      href: root + url(page ? paths.sentencePage : paths.sentenceRow, { key }) };
  }

  /** The text around the first query word, cut at SNIPPET characters, as [text, is-a-match]
   * pieces. */
  function snippet(text, wanted) {
    const matches = [...text.matchAll(WORD)].filter((m) => wanted.has(m[0].toLowerCase()));
    const first = matches.length ? matches[0].index : 0;
    const start = wordStart(text, Math.max(0, Math.min(first - 30, text.length - SNIPPET)), first);
    const end = Math.min(text.length, start + SNIPPET);
    const pieces = [];
    let at = start;
    for (const m of matches.filter((m) => m.index >= start && m.index + m[0].length <= end)) {
      pieces.push([text.slice(at, m.index), false], [m[0], true]);
      at = m.index + m[0].length;
    }
    pieces.push([text.slice(at, end), false]);
    if (start > 0) pieces[0][0] = `…${pieces[0][0]}`;
    if (end < text.length) pieces[pieces.length - 1][0] += "…";
    return pieces;
  }

  /** ``at``, or the start of the next word if ``at`` is inside one (never past ``limit``). */
  function wordStart(text, at, limit) {
    if (at === 0 || /\s/.test(text[at - 1])) return at;
    const space = text.slice(at, limit).search(/\s/);
    return space < 0 ? at : at + space + 1;
  }

  /** A head's option: its name, its label, and why it is listed (a column's top heads). */
  function fillHead(li, hit) {
    const badge = document.createElement("span");
    badge.className = `label ${hit.labelClass}`;
    badge.textContent = hit.label;
    li.append(badge);
    if (hit.detail) li.append(` ${hit.detail}`);
  }

  /** A sentence's option: its text around the query's words, which are marked. */
  function fillSentence(li, hit) {
    for (const [text, match] of snippet(hit.text, hit.words)) {
      const part = document.createElement(match ? "mark" : "span");
      part.textContent = text;
      li.append(part);
    }
    if (!hit.page) li.append(" (no page: its row in the list)");
  }

  /** One option of the listbox (text only: no sentence ever becomes markup). */
  function option(hit, id) {
    const li = document.createElement("li");
    li.id = id;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", "false");
    li.dataset.href = hit.href;
    li.className = `search-${hit.kind}`;
    const name = document.createElement("span");
    name.className = "search-name";
    name.textContent = hit.kind === "sentence" ? `#${Number(hit.key)}` : hit.name;
    li.append(name, " ");
    if (hit.kind === "definition") li.append(`definition: ${hit.detail}`);
    else (hit.kind === "head" ? fillHead : fillSentence)(li, hit);
    return li;
  }

  /** Everything the query finds, heads first, each list cut to its limit; and a summary. */
  function results(root, index, query) {
    const seen = new Set();
    const heads = [...findHeads(root, query), ...findTop(root, index, query)]
      .filter((hit) => !seen.has(hit.href + hit.detail) && seen.add(hit.href + hit.detail));
    const found = findSentences(index, query);
    const definitions = findDefinitions(root, index, query);
    const hits = [
      ...heads.slice(0, LIMITS.heads),
      ...definitions.slice(0, LIMITS.definitions),
      ...found.slice(0, LIMITS.sentences).map((p) => sentenceHit(root, index, p, query)),
    ];
    const loading = index === undefined ? " (sentences: loading the index…)"
      : index === null ? " (no search index: sentences cannot be searched)" : "";
    const defined = definitions.length ? [`${definitions.length} definition${definitions.length === 1 ? "" : "s"}`] : [];
    const summary = [...headCounts(heads), ...defined, `${found.length} sentence${found.length === 1 ? "" : "s"}`].join(", ") +
      (found.length > LIMITS.sentences ? ` (first ${LIMITS.sentences} shown)` : "") + loading;
    return { hits, summary };
  }

  /** What the head hits are, in words: heads found by name or label, and a column's ranking
   * (its highest heads, whatever their values: "the 3 highest on [SEP]" is not "3 [SEP] heads"). */
  function headCounts(heads) {
    const named = heads.filter((hit) => !hit.top).length;
    const titles = [...new Set(heads.filter((hit) => hit.top).map((hit) => hit.top))];
    return [
      ...(named || !titles.length ? [`${named} head${named === 1 ? "" : "s"} by name or label`] : []),
      ...titles.map((title) => `the ${heads.filter((hit) => hit.top === title).length} highest on ${title}`),
    ];
  }

  /** The combobox: its state is the input, the list and the active option. */
  function mount(box) {
    const input = box.querySelector("input");
    const list = box.querySelector("[role=listbox]");
    const status = box.querySelector("[role=status]");
    const root = box.dataset.root || "";
    const load = loader(root);
    let index; // undefined while loading, null if the index cannot be loaded
    let active = -1;

    const options = () => [...list.querySelectorAll("[role=option]")];

    function setOpen(open) {
      list.hidden = !open;
      if (!open) status.textContent = "";
      input.setAttribute("aria-expanded", String(open));
      if (!open) setActive(-1);
    }

    /** Makes option ``position`` (wrapping round) the active one; -1: none. */
    function setActive(position) {
      const all = options();
      active = position < 0 || !all.length ? -1 : position % all.length;
      all.forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
      if (active < 0) input.removeAttribute("aria-activedescendant");
      else {
        input.setAttribute("aria-activedescendant", all[active].id);
        reveal(all[active]);
      }
    }

    /** Scrolls the list (never the page) so that an option shows. */
    function reveal(li) {
      const top = li.offsetTop;
      const bottom = top + li.offsetHeight;
      if (top < list.scrollTop) list.scrollTop = top;
      else if (bottom > list.scrollTop + list.clientHeight) list.scrollTop = bottom - list.clientHeight;
    }

    function update() {
      const query = input.value.trim();
      if (!query) return setOpen(false);
      const { hits, summary } = results(root, index, query);
      list.replaceChildren(...hits.map((hit, i) => option(hit, `site-search-${i}`)));
      status.textContent = hits.length ? summary : `Nothing found for “${query}”`;
      setOpen(true);
      setActive(-1);
    }

    function go(position) {
      const target = options()[position];
      if (target) window.location.href = target.dataset.href;
    }

    function onKey(event) {
      const open = !list.hidden;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!open) return update();
        const last = options().length - 1;
        setActive(event.key === "ArrowDown" ? active + 1 : (active <= 0 ? last : active - 1));
      } else if (event.key === "Enter") {
        event.preventDefault();
        go(active < 0 ? 0 : active);
      } else if (event.key === "Escape") {
        event.preventDefault(); // a search field would clear itself at once
        if (open) setOpen(false);
        else input.value = "";
      }
    }

    input.addEventListener("focus", () => {
      load().then((loaded) => { index = loaded; if (input.value.trim()) update(); });
    });
    input.addEventListener("input", update);
    input.addEventListener("keydown", onKey);
    input.addEventListener("blur", () => setOpen(false));
    // Keep the focus in the box while an option is clicked, so the list stays until it opens.
    list.addEventListener("mousedown", (event) => event.preventDefault());
    list.addEventListener("click", (event) => {
      const li = event.target.closest("[role=option]");
      if (li) go(options().indexOf(li));
    });
    setOpen(false);
  }

  function start() {
    if (!window.AtlasData) return; // a theme without the data layer: no search
    for (const box of document.querySelectorAll(".site-search")) mount(box);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
