/* The case table (sort, filter, failing only) and the per-case diff charts of a harness report.
   Data comes from <script type="application/json" id="report-data">; nothing is fetched.
   Initial state can be given in the URL hash, e.g. #q=storage&failing=1&sort=ndcg@10&dir=desc&m=recall@5 */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var D = JSON.parse($("report-data").textContent);
  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function fmt(v, d) {
    if (v === null || v === undefined) return "\u2014";
    if (Math.abs(v) >= 1e4) return v.toPrecision(4);
    return v.toFixed(d === undefined ? 3 : d);
  }
  function signed(v) { return v === null ? "\u2014" : (v > 0 ? "+" : "") + fmt(v); }

  var cases = D.cases, M = D.metrics, diff = D.diff;
  cases.forEach(function (c, i) { c.i = i; c.h = (c.id + "\n" + c.q + "\n" + c.tags).toLowerCase(); });
  var STATUS_ORDER = { error: 0, fail: 1, unscored: 2, ok: 3 };

  var state = { q: "", failing: false, sort: null, dir: 1, dm: null };
  if (diff && diff.metrics.length) state.dm = diff.metrics.indexOf(D.primary) >= 0 ? D.primary : diff.metrics[0];

  function delta(c) {
    if (!diff || state.dm === null) return null;
    var b = diff.b[state.dm][c.i], h = diff.h[state.dm][c.i];
    return b === null || h === null ? null : h - b;
  }

  var cols = [
    { key: "id", label: "case", num: false, get: function (c) { return c.id; } },
    { key: "query", label: "query", num: false, get: function (c) { return c.q; } },
    { key: "tags", label: "tags", num: false, get: function (c) { return c.tags; } },
    { key: "status", label: "status", num: true, get: function (c) { return STATUS_ORDER[c.st]; } }
  ];
  M.forEach(function (m, j) { cols.push({ key: m, label: m, num: true, metric: j, get: function (c) { return c.v[j]; } }); });
  if (diff) cols.push({ key: "delta", label: "\u0394", num: true, delta: true, get: delta });

  /* the first click on a metric (or delta) column puts the worst cases on top */
  function worstFirst(col) {
    if (col.metric !== undefined) return D.gib[col.metric] ? 1 : -1;
    if (col.delta) return diff.gib[diff.metrics.indexOf(state.dm)] ? 1 : -1;
    return 1;
  }

  function colLabel(col) { return col.delta ? "\u0394 " + (state.dm || "") : col.label; }

  function renderHead() {
    var html = "<tr>";
    cols.forEach(function (col, k) {
      var sort = state.sort === k ? (state.dir > 0 ? "ascending" : "descending") : "none";
      html += '<th class="' + (col.num ? "num" : "") + '" aria-sort="' + sort + '"><button type="button" data-col="' +
        k + '" title="sort by ' + esc(colLabel(col)) + '">' + esc(colLabel(col)) + "</button></th>";
    });
    $("case-head").innerHTML = html + "</tr>";
  }

  function visible() {
    var q = state.q.toLowerCase().trim(), out = [];
    var terms = q ? q.split(/\s+/) : [];
    for (var i = 0; i < cases.length; i++) {
      var c = cases[i];
      if (state.failing && c.st !== "fail" && c.st !== "error") continue;
      var ok = true;
      for (var t = 0; t < terms.length && ok; t++) ok = c.h.indexOf(terms[t]) >= 0;
      if (ok) out.push(c);
    }
    if (state.sort !== null) {
      var col = cols[state.sort], dir = state.dir;
      var keyed = out.map(function (c) { return [col.get(c), c]; });
      keyed.sort(function (a, b) {
        var x = a[0], y = b[0];
        if (x === null || x === undefined) return (y === null || y === undefined) ? a[1].i - b[1].i : 1;
        if (y === null || y === undefined) return -1;
        var r = col.num ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
        return r !== 0 ? r * dir : a[1].i - b[1].i;
      });
      out = keyed.map(function (p) { return p[1]; });
    }
    return out;
  }

  function renderRows() {
    var rows = visible(), parts = [];
    for (var r = 0; r < rows.length; r++) {
      var c = rows[r], bad = {};
      c.bad.forEach(function (j) { bad[j] = true; });
      var id = c.a ? '<a href="#' + esc(c.a) + '"><code>' + esc(c.id) + "</code></a>" : "<code>" + esc(c.id) + "</code>";
      var s = '<tr class="st-' + c.st + '" data-id="' + esc(c.id) + '"><td>' + id + '</td><td class="q"' +
        (c.why ? ' title="' + esc(c.why) + '"' : "") + ">" + esc(c.q) + '</td><td class="tags">' + esc(c.tags) +
        '</td><td><span class="badge ' + c.st + '">' + c.st + "</span></td>";
      for (var j = 0; j < M.length; j++) s += '<td class="num' + (bad[j] ? " bad" : "") + '">' + fmt(c.v[j]) + "</td>";
      if (diff) {
        var d = delta(c), gi = diff.metrics.indexOf(state.dm), better = d !== null && (diff.gib[gi] ? d > 0 : d < 0);
        s += '<td class="num ' + (d === null || d === 0 ? "" : better ? "up" : "down") + '">' + (d === null ? "\u2014" : signed(d)) + "</td>";
      }
      parts.push(s + "</tr>");
    }
    $("case-rows").innerHTML = parts.join("");
    var nf = cases.filter(function (c) { return c.st === "fail" || c.st === "error"; }).length;
    $("case-count").textContent = rows.length + " of " + cases.length + " cases shown (" + nf + " failing)";
  }

  function saveHash() {
    var p = [];
    if (state.q) p.push("q=" + encodeURIComponent(state.q));
    if (state.failing) p.push("failing=1");
    if (state.sort !== null) p.push("sort=" + encodeURIComponent(cols[state.sort].key), "dir=" + (state.dir > 0 ? "asc" : "desc"));
    if (diff && state.dm) p.push("m=" + encodeURIComponent(state.dm));
    try { history.replaceState(null, "", p.length ? "#" + p.join("&") : location.pathname + location.search); } catch (e) { /* file: URLs in some browsers */ }
  }

  function loadHash() {
    var h = location.hash.slice(1);
    if (h.indexOf("=") < 0) return;
    h.split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = kv.slice(0, i), v = decodeURIComponent(kv.slice(i + 1));
      if (k === "q") state.q = v;
      else if (k === "failing") state.failing = v === "1";
      else if (k === "dir") state.dir = v === "desc" ? -1 : 1;
      else if (k === "m" && diff && diff.metrics.indexOf(v) >= 0) state.dm = v;
      else if (k === "sort") cols.forEach(function (col, n) { if (col.key === v) state.sort = n; });
    });
  }

  /* ---- diff charts ---- */
  function domain(vals) {
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    if (lo >= 0 && hi <= 1) return [0, 1];
    if (hi === lo) return [lo - 0.5, hi + 0.5];
    var pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function scatter() {
    var m = state.dm, b = diff.b[m], h = diff.h[m], gib = diff.gib[diff.metrics.indexOf(m)];
    var W = 320, P = 36, S = W - P - 10, groups = {}, keys = [], vals = [], up = 0, down = 0, same = 0;
    for (var i = 0; i < cases.length; i++) {
      if (b[i] === null || h[i] === null) continue;
      vals.push(b[i], h[i]);
      var k = b[i] + "," + h[i];
      if (!groups[k]) { groups[k] = { b: b[i], h: h[i], ids: [] }; keys.push(k); }
      groups[k].ids.push(cases[i].id);
      if (h[i] === b[i]) same++; else if ((h[i] > b[i]) === gib) up++; else down++;
    }
    $("diff-summary").textContent = vals.length / 2 + " paired cases: " + up + " better, " + down + " worse, " + same + " unchanged";
    if (!vals.length) { $("scatter").innerHTML = "<p class=\"sub\">no paired scores for " + esc(m) + "</p>"; $("delta-hist").innerHTML = ""; return; }
    var dom = domain(vals), lo = dom[0], hi = dom[1];
    var x = function (v) { return (P + (v - lo) / (hi - lo) * S).toFixed(1); };
    var y = function (v) { return (10 + S - (v - lo) / (hi - lo) * S).toFixed(1); };
    var s = '<svg width="' + W + '" height="' + (S + 10 + P) + '" viewBox="0 0 ' + W + " " + (S + 10 + P) +
      '" role="img" aria-label="base versus head per case for ' + esc(m) + '">';
    for (var t = 0; t <= 4; t++) {
      var v = lo + (hi - lo) * t / 4;
      s += '<line class="axis" x1="' + x(v) + '" x2="' + x(v) + '" y1="10" y2="' + (10 + S) + '"/>';
      s += '<line class="axis" x1="' + P + '" x2="' + (P + S) + '" y1="' + y(v) + '" y2="' + y(v) + '"/>';
      s += '<text x="' + x(v) + '" y="' + (S + 24) + '" text-anchor="middle">' + fmt(v, 2) + "</text>";
      s += '<text x="' + (P - 4) + '" y="' + y(v) + '" text-anchor="end" dominant-baseline="middle">' + fmt(v, 2) + "</text>";
    }
    s += '<line class="diag" x1="' + x(lo) + '" y1="' + y(lo) + '" x2="' + x(hi) + '" y2="' + y(hi) + '"/>';
    s += '<text x="' + (P + S / 2) + '" y="' + (S + 38) + '" text-anchor="middle">base ' + esc(m) + "</text>";
    keys.forEach(function (k) {
      var g = groups[k], cls = g.h === g.b ? "same" : ((g.h > g.b) === gib ? "up" : "down");
      var r = Math.min(12, 3 + 1.6 * Math.sqrt(g.ids.length - 1));
      var label = g.ids.length + " case" + (g.ids.length > 1 ? "s" : "") + ": " + g.ids.slice(0, 6).join(", ") +
        (g.ids.length > 6 ? ", \u2026" : "") + " (" + fmt(g.b) + " \u2192 " + fmt(g.h) + ")";
      s += '<circle class="' + cls + '" cx="' + x(g.b) + '" cy="' + y(g.h) + '" r="' + r.toFixed(1) +
        '" fill-opacity="0.75" data-ids="' + esc(g.ids.join(" ")) + '"><title>' + esc(label) + "</title></circle>";
    });
    $("scatter").innerHTML = s + "</svg>";
    deltaHist(b, h, gib);
  }

  function deltaHist(b, h, gib) {
    var ds = [];
    for (var i = 0; i < b.length; i++) if (b[i] !== null && h[i] !== null) ds.push(h[i] - b[i]);
    var mx = Math.max.apply(null, ds.map(Math.abs)) || 1, bins = 21, counts = [];
    for (var k = 0; k < bins; k++) counts.push(0);
    ds.forEach(function (d) { counts[Math.min(bins - 1, Math.max(0, Math.floor((d + mx) / (2 * mx) * bins)))]++; });
    var W = 320, H = 200, P = 30, bw = (W - 2 * P) / bins, top = Math.max.apply(null, counts);
    var s = '<svg width="' + W + '" height="' + (H + 40) + '" viewBox="0 0 ' + W + " " + (H + 40) + '" role="img" aria-label="histogram of per-case deltas">';
    s += '<line class="axis" x1="' + P + '" x2="' + (W - P) + '" y1="' + H + '" y2="' + H + '"/>';
    s += '<line class="diag" x1="' + (W / 2) + '" x2="' + (W / 2) + '" y1="10" y2="' + H + '"/>';
    counts.forEach(function (c, k) {
      if (!c) return;
      var a = -mx + 2 * mx * k / bins, z = a + 2 * mx / bins, mid = (a + z) / 2;
      var cls = Math.abs(mid) < mx / bins ? "same" : ((mid > 0) === gib ? "up" : "down");
      var bh = Math.max(1.5, (H - 14) * c / top);
      s += '<rect class="' + cls + '" x="' + (P + k * bw + 0.5).toFixed(1) + '" y="' + (H - bh).toFixed(1) + '" width="' +
        (bw - 1).toFixed(1) + '" height="' + bh.toFixed(1) + '"><title>' + esc("[" + fmt(a) + ", " + fmt(z) + "): " + c +
        " case" + (c > 1 ? "s" : "")) + "</title></rect>";
    });
    s += '<text x="' + P + '" y="' + (H + 14) + '" text-anchor="middle">' + fmt(-mx, 2) + "</text>";
    s += '<text x="' + (W / 2) + '" y="' + (H + 14) + '" text-anchor="middle">0</text>';
    s += '<text x="' + (W - P) + '" y="' + (H + 14) + '" text-anchor="middle">+' + fmt(mx, 2) + "</text>";
    s += '<text x="' + (W / 2) + '" y="' + (H + 30) + '" text-anchor="middle">head \u2212 base</text>';
    $("delta-hist").innerHTML = s + "</svg>";
  }

  /* ---- wiring ---- */
  loadHash();
  var filter = $("case-filter"), failing = $("failing-only");
  filter.value = state.q;
  failing.checked = state.failing;
  var timer = null;
  filter.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = filter.value; renderRows(); saveHash(); }, 80);
  });
  failing.addEventListener("change", function () { state.failing = failing.checked; renderRows(); saveHash(); });
  $("case-head").addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-col]");
    if (!btn) return;
    var k = +btn.getAttribute("data-col");
    if (state.sort === k) state.dir = -state.dir;
    else { state.sort = k; state.dir = worstFirst(cols[k]); }
    renderHead(); renderRows(); saveHash();
  });
  if (diff && state.dm !== null) {
    var sel = $("diff-metric");
    sel.innerHTML = diff.metrics.map(function (m) {
      return '<option value="' + esc(m) + '"' + (m === state.dm ? " selected" : "") + ">" + esc(m) + "</option>";
    }).join("");
    sel.addEventListener("change", function () { state.dm = sel.value; scatter(); renderHead(); renderRows(); saveHash(); });
    $("scatter").addEventListener("click", function (ev) {
      var dot = ev.target.closest("circle[data-ids]");
      if (!dot) return;
      var ids = dot.getAttribute("data-ids").split(" ");
      state.q = ids.length === 1 ? ids[0] : ""; state.failing = false;
      filter.value = state.q; failing.checked = false;
      renderRows(); saveHash();
      $("cases").scrollIntoView();
    });
    scatter();
  }
  renderHead();
  renderRows();
  document.documentElement.setAttribute("data-ready", "1");
})();
