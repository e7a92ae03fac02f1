/* The case table (sort, filter, failing only, pages) and the per-case diff charts of a harness report.
   Data comes from <script type="application/json" id="report-data">; nothing is fetched. The HTML holds
   every row already (the table without JavaScript); this script redraws one page of it at a time.
   Initial state can be given in the URL hash, e.g. #q=storage&failing=1&sort=ndcg@10&dir=desc&m=recall@5&page=2
   A link to anything inside a closed <details> opens it. */
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

  var state = { q: "", failing: false, sort: null, dir: 1, dm: null, page: 0, size: D.page || 0 };
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
  if (diff) cols.push({ key: "delta", label: "\u0394", num: true, delta: true, get: delta });
  M.forEach(function (m, j) { cols.push({ key: m, label: m, num: true, metric: j, get: function (c) { return c.v[j]; } }); });

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
    var pages = state.size ? Math.max(1, Math.ceil(rows.length / state.size)) : 1;
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var first = state.size ? state.page * state.size : 0, last = state.size ? Math.min(rows.length, first + state.size) : rows.length;
    for (var r = first; r < last; r++) {
      var c = rows[r], bad = {};
      c.bad.forEach(function (j) { bad[j] = true; });
      var id = c.a ? '<a href="#' + esc(c.a) + '"><code>' + esc(c.id) + "</code></a>" : "<code>" + esc(c.id) + "</code>";
      var s = '<tr class="st-' + c.st + '" data-id="' + esc(c.id) + '"><td>' + id + '</td><td class="q"' +
        (c.why ? ' title="' + esc(c.why) + '"' : "") + ">" + esc(c.q) + '</td><td class="tags">' + esc(c.tags) +
        '</td><td><span class="badge ' + c.st + '">' + c.st + "</span></td>";
      if (diff) {
        var d = delta(c), gi = diff.metrics.indexOf(state.dm), better = d !== null && (diff.gib[gi] ? d > 0 : d < 0);
        s += '<td class="num ' + (d === null || d === 0 ? "" : better ? "up" : "down") + '">' + (d === null ? "\u2014" : signed(d)) + "</td>";
      }
      for (var j = 0; j < M.length; j++) s += '<td class="num' + (bad[j] ? " bad" : "") + '">' + fmt(c.v[j]) + "</td>";
      parts.push(s + "</tr>");
    }
    $("case-rows").innerHTML = parts.join("");
    var nf = cases.filter(function (c) { return c.st === "fail" || c.st === "error"; }).length;
    $("case-count").textContent = (rows.length === cases.length ? cases.length + " cases" : rows.length + " of " + cases.length + " cases") +
      " (" + nf + " failing)" + (pages > 1 ? "; showing " + (first + 1) + "\u2013" + last : "");
    renderPager(pages);
  }

  function renderPager(pages) {
    var pager = $("case-pager");
    pager.hidden = pages < 2;
    if (pages < 2) { pager.innerHTML = ""; return; }
    var b = function (page, label, text, off) {
      return '<button type="button" data-page="' + page + '" aria-label="' + label + '"' + (off ? " disabled" : "") + ">" + text + "</button>";
    };
    pager.innerHTML = b(0, "first page", "\u00ab", state.page === 0) + b(state.page - 1, "previous page", "\u2039 prev", state.page === 0) +
      '<span class="sub">page ' + (state.page + 1) + " of " + pages + "</span>" +
      b(state.page + 1, "next page", "next \u203a", state.page >= pages - 1) + b(pages - 1, "last page", "\u00bb", state.page >= pages - 1);
  }

  function saveHash() {
    var p = [];
    if (state.q) p.push("q=" + encodeURIComponent(state.q));
    if (state.failing) p.push("failing=1");
    if (state.sort !== null) p.push("sort=" + encodeURIComponent(cols[state.sort].key), "dir=" + (state.dir > 0 ? "asc" : "desc"));
    if (diff && state.dm) p.push("m=" + encodeURIComponent(state.dm));
    if (state.page) p.push("page=" + (state.page + 1));
    if (state.size !== (D.page || 0)) p.push("rows=" + state.size);
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
      else if (k === "page" && +v >= 1) state.page = Math.floor(+v) - 1;
      else if (k === "rows" && +v >= 0) state.size = Math.floor(+v);
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

  /* a legend of the three colours both per-case charts use, in the top row of an SVG */
  function legend(right) {
    var items = [["up", "better"], ["down", "worse"], ["same", "unchanged"]], s = "", x0 = right - 196;
    items.forEach(function (it, k) {
      var lx = x0 + k * 64;
      s += '<rect class="' + it[0] + '" x="' + lx + '" y="4" width="10" height="10"/><text class="legend" x="' + (lx + 14) + '" y="13">' + it[1] + "</text>";
    });
    return s;
  }

  function scatter() {
    var m = state.dm, b = diff.b[m], h = diff.h[m], gib = diff.gib[diff.metrics.indexOf(m)];
    var W = 330, L = 48, T = 24, S = W - L - 12, groups = {}, keys = [], vals = [], up = 0, down = 0, same = 0;
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
    var dom = domain(vals), lo = dom[0], hi = dom[1], H = T + S + 40;
    var x = function (v) { return (L + (v - lo) / (hi - lo) * S).toFixed(1); };
    var y = function (v) { return (T + S - (v - lo) / (hi - lo) * S).toFixed(1); };
    var s = '<svg width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H +
      '" role="img" aria-label="base versus head per case for ' + esc(m) + '">';
    for (var t = 0; t <= 4; t++) {
      var v = lo + (hi - lo) * t / 4;
      s += '<line class="grid" x1="' + x(v) + '" x2="' + x(v) + '" y1="' + T + '" y2="' + (T + S) + '"/>';
      s += '<line class="grid" x1="' + L + '" x2="' + (L + S) + '" y1="' + y(v) + '" y2="' + y(v) + '"/>';
      s += '<text class="tick" x="' + x(v) + '" y="' + (T + S + 14) + '" text-anchor="middle">' + fmt(v, 2) + "</text>";
      s += '<text class="tick" x="' + (L - 4) + '" y="' + y(v) + '" text-anchor="end" dominant-baseline="middle">' + fmt(v, 2) + "</text>";
    }
    s += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (T + S) + '"/>';
    s += '<line class="axis" x1="' + L + '" x2="' + (L + S) + '" y1="' + (T + S) + '" y2="' + (T + S) + '"/>';
    s += '<line class="diag" x1="' + x(lo) + '" y1="' + y(lo) + '" x2="' + x(hi) + '" y2="' + y(hi) + '"/>';
    s += '<text class="axis-title" x="' + (L + S / 2) + '" y="' + (T + S + 30) + '" text-anchor="middle">base ' + esc(m) + "</text>";
    s += '<text class="axis-title" transform="translate(12 ' + (T + S / 2) + ') rotate(-90)" text-anchor="middle">head ' + esc(m) + "</text>";
    s += legend(W - 4);
    keys.forEach(function (k) {
      var g = groups[k], cls = g.h === g.b ? "same" : ((g.h > g.b) === gib ? "up" : "down");
      var r = Math.min(12, 3 + 1.6 * Math.sqrt(g.ids.length - 1));
      var label = g.ids.length + " case" + (g.ids.length > 1 ? "s" : "") + ": " + g.ids.slice(0, 6).join(", ") +
        (g.ids.length > 6 ? ", \u2026" : "") + " (" + fmt(g.b) + " \u2192 " + fmt(g.h) + ")";
      s += '<circle class="' + cls + '" cx="' + x(g.b) + '" cy="' + y(g.h) + '" r="' + r.toFixed(1) +
        '" fill-opacity="0.75" data-ids="' + esc(g.ids.join(" ")) + '"><title>' + esc(label) + "</title></circle>";
    });
    $("scatter").innerHTML = s + "</svg>";
    deltaHist(b, h, gib, m);
  }

  function niceStep(top) {
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(top, 1) / 4)));
    return [1, 2, 5, 10].map(function (f) { return f * p; }).filter(function (st) { return top / st <= 4; })[0];
  }

  function deltaHist(b, h, gib, m) {
    var ds = [];
    for (var i = 0; i < b.length; i++) if (b[i] !== null && h[i] !== null) ds.push(h[i] - b[i]);
    var mx = Math.max.apply(null, ds.map(Math.abs)) || 1, bins = 21, counts = [];
    for (var k = 0; k < bins; k++) counts.push(0);
    ds.forEach(function (d) { counts[Math.min(bins - 1, Math.max(0, Math.floor((d + mx) / (2 * mx) * bins)))]++; });
    var W = 330, L = 48, R = W - 12, T = 24, B = 224, bw = (R - L) / bins, top = Math.max.apply(null, counts);
    var step = Math.max(1, Math.round(niceStep(top))), ymax = Math.max(step, Math.ceil(top / step) * step);
    var y = function (c) { return B - (B - T) * c / ymax; };
    var s = '<svg width="' + W + '" height="' + (B + 40) + '" viewBox="0 0 ' + W + " " + (B + 40) + '" role="img" aria-label="histogram of per-case deltas of ' + esc(m) + '">';
    for (var c = 0; c <= ymax; c += step) {
      s += '<line class="grid" x1="' + L + '" x2="' + R + '" y1="' + y(c).toFixed(1) + '" y2="' + y(c).toFixed(1) + '"/>';
      s += '<text class="tick" x="' + (L - 4) + '" y="' + y(c).toFixed(1) + '" text-anchor="end" dominant-baseline="middle">' + c + "</text>";
    }
    counts.forEach(function (c, k) {
      if (!c) return;
      var a = -mx + 2 * mx * k / bins, z = a + 2 * mx / bins, mid = (a + z) / 2;
      var cls = Math.abs(mid) < mx / bins ? "same" : ((mid > 0) === gib ? "up" : "down");
      s += '<rect class="' + cls + '" x="' + (L + k * bw + 0.5).toFixed(1) + '" y="' + y(c).toFixed(1) + '" width="' +
        (bw - 1).toFixed(1) + '" height="' + (B - y(c)).toFixed(1) + '"><title>' + esc("[" + fmt(a) + ", " + fmt(z) + "): " + c +
        " case" + (c > 1 ? "s" : "")) + "</title></rect>";
    });
    s += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + B + '"/>';
    s += '<line class="axis" x1="' + L + '" x2="' + R + '" y1="' + B + '" y2="' + B + '"/>';
    s += '<line class="diag" x1="' + ((L + R) / 2) + '" x2="' + ((L + R) / 2) + '" y1="' + T + '" y2="' + B + '"/>';
    [[L, fmt(-mx, 2)], [(L + R) / 2, "0"], [R, "+" + fmt(mx, 2)]].forEach(function (tk) {
      s += '<line class="axis" x1="' + tk[0] + '" x2="' + tk[0] + '" y1="' + B + '" y2="' + (B + 4) + '"/>';
      s += '<text class="tick" x="' + tk[0] + '" y="' + (B + 15) + '" text-anchor="middle">' + tk[1] + "</text>";
    });
    s += '<text class="axis-title" x="' + ((L + R) / 2) + '" y="' + (B + 30) + '" text-anchor="middle">\u0394 ' + esc(m) + " (head \u2212 base)</text>";
    s += '<text class="axis-title" transform="translate(12 ' + ((T + B) / 2) + ') rotate(-90)" text-anchor="middle">cases</text>';
    s += legend(W - 4);
    $("delta-hist").innerHTML = s + "</svg>";
  }

  /* ---- a link into a closed <details> opens it (Chromium does so for fragments itself; others do not) ---- */
  function reveal(id) {
    var el = id && document.getElementById(id);
    if (!el) return;
    for (var p = el; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    el.scrollIntoView();
  }
  function revealHash() {
    var h = decodeURIComponent(location.hash.slice(1));
    if (h && h.indexOf("=") < 0) reveal(h);
  }
  window.addEventListener("hashchange", revealHash);
  document.addEventListener("click", function (ev) {  /* before the browser scrolls to the target */
    var a = ev.target.closest('a[href^="#"]'), id = a && decodeURIComponent(a.getAttribute("href").slice(1));
    if (!id || !document.getElementById(id)) return;
    if (id === decodeURIComponent(location.hash.slice(1))) { ev.preventDefault(); reveal(id); return; }  /* no hashchange */
    for (var p = document.getElementById(id); p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
  });

  /* ---- wiring ---- */
  loadHash();
  var filter = $("case-filter"), failing = $("failing-only");
  filter.value = state.q;
  failing.checked = state.failing;
  var timer = null;
  filter.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = filter.value; state.page = 0; renderRows(); saveHash(); }, 80);
  });
  failing.addEventListener("change", function () { state.failing = failing.checked; state.page = 0; renderRows(); saveHash(); });
  var size = $("page-size");
  if ([].some.call(size.options, function (o) { return +o.value === state.size; })) size.value = String(state.size);
  size.addEventListener("change", function () { state.size = +size.value; state.page = 0; renderRows(); saveHash(); });
  $("case-pager").addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-page]");
    if (!btn || btn.disabled) return;
    state.page = +btn.getAttribute("data-page");
    renderRows(); saveHash();
  });
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
      state.q = ids.length === 1 ? ids[0] : ""; state.failing = false; state.page = 0;
      filter.value = state.q; failing.checked = false;
      renderRows(); saveHash();
      $("cases").scrollIntoView();
    });
    scatter();
  }
  renderHead();
  renderRows();
  revealHash();
  document.documentElement.setAttribute("data-ready", "1");
})();
