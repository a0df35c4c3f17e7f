// Sortable tables: click a column title to sort by it, again to reverse.
// A cell's data-value, if present, is what it sorts by; <th data-sort="number|text"> says how.
"use strict";
(function () {
  function sortBy(table, column, type, descending) {
    const body = table.tBodies[0];
    const rows = [...body.rows];
    const key = (row) => {
      const cell = row.cells[column];
      const raw = cell.dataset.value ?? cell.textContent.trim();
      return type === "number" ? Number(raw) : raw.toLowerCase();
    };
    rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
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
          const descending = th.getAttribute("aria-sort") === "ascending";
          headers.forEach((other) => other.removeAttribute("aria-sort"));
          th.setAttribute("aria-sort", descending ? "descending" : "ascending");
          sortBy(table, column, th.dataset.sort, descending);
        };
        th.addEventListener("click", activate);
        th.addEventListener("keydown", (e) => { if (e.key === "Enter") activate(); });
      });
    }
  }
  document.addEventListener("DOMContentLoaded", init);
})();
