/* tinykeras report: sortable tables and the source of every figure as a tooltip. No network, no libraries. */
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.setAttribute("data-js-errors", errors.join(" | "));
  });
  function key(cell) {
    var fig = cell.querySelector(".fig");
    var raw = cell.getAttribute("data-sort");
    if (raw === null && fig) { raw = fig.getAttribute("data-v"); }
    if (raw === null) { raw = cell.textContent.trim(); }
    var num = Number(raw);
    return raw !== "" && !isNaN(num) ? num : raw.toLowerCase();
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) {
      return { row: r, k: r.cells[col] ? key(r.cells[col]) : "", i: i };
    });
    rows.sort(function (a, b) {
      var x = a.k, y = b.k, c;
      if (typeof x === typeof y) { c = x < y ? -1 : x > y ? 1 : 0; } else { c = typeof x === "number" ? -1 : 1; }
      if (dir === "descending") { c = -c; }
      return c || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  var sources = {};
  Array.prototype.forEach.call(document.querySelectorAll("#sources tbody tr"), function (r) {
    sources[r.cells[0].textContent.trim()] = r.cells[2].textContent.trim();
  });
  Array.prototype.forEach.call(document.querySelectorAll(".fig"), function (f) {
    f.title = (sources[f.getAttribute("data-src")] || "?") + ": " + f.getAttribute("data-k");
  });
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () { sortBy(table, col, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, col, th); } });
    });
  });
  document.body.setAttribute("data-ready", "1");
}());
