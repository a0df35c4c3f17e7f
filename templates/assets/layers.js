// The Layers page's word explorer: for the chosen word and layer, each occurrence's nearest
// other occurrences. Data: #explorer-words (the layers analysis's "explorer" list) and
// #explorer-sentences (index -> number, text, page link or null), both embedded in the page.
"use strict";
(function () {
  const read = (id) => JSON.parse(document.getElementById(id).textContent);

  const ordinal = (n) => `${n}${n % 100 >= 11 && n % 100 <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th"}`;

  /** Where the nth (1-based) use of word (case-folded, not inside a longer word) starts and
   * ends in text, or null where the text spells it otherwise (e.g. an accent the tokenizer
   * stripped). */
  function findNth(text, word, nth) {
    const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const pattern = new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "giu");
    let seen = 0;
    for (const match of text.matchAll(pattern)) {
      if (++seen === nth) return [match.index, match.index + match[0].length];
    }
    return null;
  }

  /** The sentence's number (a link to its page), its text with this occurrence marked, and a
   * line that says which use of the word it is ("the 2nd “the” of sentence 3"): occurrences
   * kept from one sentence are its first uses of the word, in order. */
  function sentenceCell(sentence, word, nth) {
    const cell = document.createElement("td");
    const number = sentence.href ? document.createElement("a") : document.createElement("span");
    number.textContent = `#${sentence.number}`;
    if (sentence.href) number.href = sentence.href;
    const span = findNth(sentence.text, word, nth);
    const text = document.createElement("span");
    if (span) {
      const mark = document.createElement("mark");
      mark.className = "occurrence";
      mark.textContent = sentence.text.slice(span[0], span[1]);
      text.append(sentence.text.slice(0, span[0]), mark, sentence.text.slice(span[1]));
    } else {
      text.textContent = sentence.text;
    }
    const which = document.createElement("small");
    which.className = "hint occurrence-of";
    which.textContent = `the ${ordinal(nth)} “${word}” of sentence ${sentence.number}`;
    cell.append(number, " ", text, document.createElement("br"), which);
    return cell;
  }

  function nearestCell(pairs, occurrences, sentences) {
    const cell = document.createElement("td");
    pairs.forEach(([other, cosine], position) => {
      if (position) cell.append(", ");
      const sentence = sentences[occurrences[other][0]];
      const link = sentence.href ? document.createElement("a") : document.createElement("span");
      link.textContent = `occurrence ${other + 1} (#${sentence.number})`;
      if (sentence.href) link.href = sentence.href;
      cell.append(link, ` ${cosine.toFixed(3)}`);
    });
    if (!pairs.length) cell.textContent = "no occurrence in another sentence";
    return cell;
  }

  /** The self-similarity line of a word, as nodes: the word is text, never markup. */
  function similarityLine(word, layer) {
    if (!word.self_similarity) return [`“${word.word}”: fewer than 5 occurrences in two sentences; no self-similarity.`];
    const values = word.self_similarity.flatMap((v, l) => {
      const value = l === layer ? Object.assign(document.createElement("b"), { textContent: v.toFixed(3) }) : v.toFixed(3);
      return l ? [" · ", value] : [value];
    });
    return [`Self-similarity of “${word.word}” (${word.count} occurrences), layer 0 to ${word.self_similarity.length - 1}: `, ...values];
  }

  function draw(words, sentences) {
    const word = words[Number(document.getElementById("explorer-word").value)];
    const layer = Number(document.getElementById("explorer-layer").value);
    document.getElementById("explorer-layer-value").textContent = String(layer);
    document.getElementById("explorer-similarity").replaceChildren(...similarityLine(word, layer));
    const body = document.querySelector("#explorer-table tbody");
    body.replaceChildren(
      ...word.occurrences.map(([index], position) => {
        const row = document.createElement("tr");
        const label = document.createElement("td");
        label.textContent = String(position + 1);
        const nth = word.occurrences.slice(0, position + 1).filter(([i]) => i === index).length;
        row.append(label, sentenceCell(sentences[index], word.word, nth), nearestCell(word.nearest[layer][position], word.occurrences, sentences));
        return row;
      }),
    );
  }

  function init() {
    if (!document.getElementById("explorer-words")) return;
    const words = read("explorer-words");
    const sentences = read("explorer-sentences");
    if (!words.length) return;
    const redraw = () => draw(words, sentences);
    document.getElementById("explorer-word").addEventListener("change", redraw);
    document.getElementById("explorer-layer").addEventListener("input", redraw);
    redraw();
  }
  document.addEventListener("DOMContentLoaded", init);
})();
