/* forensik: sortable tables. The one script a report carries, inlined and pinned by its SHA-256 in the
   page's Content-Security-Policy (no other script can run). It only reorders existing rows: it reads
   textContent and moves nodes, never parses or writes HTML. Without it (a mail client, scripts off)
   every table keeps the order the report chose. */
(function () {
  "use strict";
  function key(cell) {
    var text = (cell ? cell.textContent : "").trim();
    var below = text.charAt(0) === "<";  /* "< 1e-10": a p-value below the floor sorts under it */
    var number = text.replace(/^<\s*/, "").replace(/[,\s%]/g, "");
    if (number !== "" && isFinite(number)) { return { n: parseFloat(number) * (below ? 0.5 : 1), t: text }; }
    return { n: null, t: text.toLowerCase() };
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) { return a.n - b.n; }
    if (a.n !== null) { return -1; }
    if (b.n !== null) { return 1; }
    return a.t < b.t ? -1 : a.t > b.t ? 1 : 0;
  }
  function sortable(table) {
    var body = table.tBodies[0];
    if (!table.tHead || !body || body.rows.length < 2) { return false; }
    return !table.querySelector("[rowspan]:not([rowspan='1']), thead [colspan]:not([colspan='1'])");
  }
  function sortBy(table, column, header) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, key: key(row.cells[column]), i: i };
    });
    rows.sort(function (a, b) { return (ascending ? 1 : -1) * compare(a.key, b.key) || a.i - b.i; });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th"), function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
    if (!sortable(table)) { return; }
    table.classList.add("sortable");
    Array.prototype.forEach.call(table.tHead.rows, function (headRow) {
      Array.prototype.forEach.call(headRow.cells, function (th) {
        if (th.textContent.trim() === "") { return; }
        th.tabIndex = 0;
        th.title = "sort by this column";
        var go = function () { sortBy(table, th.cellIndex, th); };
        th.addEventListener("click", go);
        th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
      });
    });
  });
})();
