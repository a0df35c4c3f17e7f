// Sortable tables: click a column title to sort by it, again to reverse. The first click sorts
// numbers largest first (the heads that do most of it on top) and text from A to Z.
// A cell's data-value, if present, is what it sorts by; <th data-sort="number|text"> says how.
"use strict";
(function () {
  function sortBy(table, column, type, descending) {
    const body = table.tBodies[0];
    const rows = [...body.rows];
    const key = (row) => {
      const cell = row.cells[column];
      const raw = cell.dataset.value ?? cell.textContent.trim();
      return type === "number" ? Number(raw) : raw;
    };
    // Text compares numbers inside it as numbers: "L2-H1" before "L10-H1", "9" before "10".
    const text = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    const compare = (x, y) =>
      type === "number" ? (x < y ? -1 : x > y ? 1 : 0) : text.compare(x, y);
    rows.sort((a, b) => (descending ? -1 : 1) * compare(key(a), key(b)));
    body.append(...rows);
  }

  function init() {
    for (const table of document.querySelectorAll("table.sortable")) {
      const headers = [...table.tHead.rows[0].cells];
      headers.forEach((th, column) => {
        if (!th.dataset.sort) return;
        th.tabIndex = 0;
        th.classList.add("sort");
        const activate = () => {
          const current = th.getAttribute("aria-sort");
          const descending = current ? current === "ascending" : th.dataset.sort === "number";
          headers.forEach((other) => other.removeAttribute("aria-sort"));
          th.setAttribute("aria-sort", descending ? "descending" : "ascending");
          sortBy(table, column, th.dataset.sort, descending);
        };
        th.addEventListener("click", activate);
        th.addEventListener("keydown", (e) => {
          if (e.key !== "Enter" && e.key !== " ") return;
          e.preventDefault(); // Space would scroll the page
          activate();
        });
      });
    }
  }
  document.addEventListener("DOMContentLoaded", init);
})();
