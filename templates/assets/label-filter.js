// The sentences index's label filters: each <select data-filter="NAME"> keeps the rows whose
// data-NAME (labels separated by TABs) holds the chosen label; all filters apply together.
"use strict";
(function () {
  function matches(row, select) {
    const wanted = select.value;
    if (!wanted) return true;
    return (row.dataset[select.dataset.filter] || "").split("\t").includes(wanted);
  }

  function apply(table, selects, counter) {
    const rows = [...table.tBodies[0].rows];
    let shown = 0;
    for (const row of rows) {
      row.hidden = !selects.every((select) => matches(row, select));
      if (!row.hidden) shown += 1;
    }
    const filtering = selects.some((select) => select.value);
    if (counter) counter.textContent = filtering ? `${shown} of ${rows.length} sentences` : "";
  }

  function init() {
    const table = document.querySelector("table.sentences");
    const selects = [...document.querySelectorAll("select[data-filter]")];
    if (!table || !selects.length) return;
    const counter = document.querySelector(".filter-count");
    for (const select of selects) {
      select.addEventListener("change", () => apply(table, selects, counter));
    }
    apply(table, selects, counter);
  }
  document.addEventListener("DOMContentLoaded", init);
})();
