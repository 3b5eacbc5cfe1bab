(function () {
  "use strict";
  var PAGE = 100;
  var names = document.querySelector("main").dataset;
  var items = JSON.parse(document.getElementById("gg-items").textContent);
  var filterBox = document.getElementById("filter");
  var tagBox = document.getElementById("tag-filter");
  var groupBox = document.getElementById("group-filter");
  var shownLabel = document.getElementById("shown");
  var groups = {};
  Array.prototype.forEach.call(document.querySelectorAll("details.group"), function (d) {
    groups[d.dataset.group] = { el: d, rows: d.querySelector(".rows"), more: d.querySelector("button.more"), list: [], shown: 0 };
    d.querySelector("button.more").addEventListener("click", function () { page(d.dataset.group); });
  });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function answerText(s) {
    if (s.d) return s.d.map(function (r) { return r[1]; }).join("");
    return s.a || "";
  }
  function side(label, s, cls) {
    var ok = s.n > 0 && s.p === s.n;
    var box = el("div", "side " + cls + (s.n === 0 ? "" : ok ? " pass" : " fail"));
    var head = label + (s.n === 0 ? " — not run" : ok ? " — pass" : " — fail") + (s.n > 1 ? " (" + s.p + "/" + s.n + " trials)" : "");
    if (s.l != null) head += " · " + s.l + " ms";
    if (s.h != null) head += " · faithfulness " + s.h;
    box.appendChild(el("h4", null, head));
    var a = el("div", "answer");
    if (s.d) {
      s.d.forEach(function (r) { a.appendChild(r[0] ? el("span", "chg", r[1]) : document.createTextNode(r[1])); });
    } else if (s.a != null) {
      a.textContent = s.a;
    }
    if (s.x) a.appendChild(el("span", "note", " …(cut)"));
    box.appendChild(a);
    if (s.e) box.appendChild(el("div", "err", s.e));
    var ev = el("div", "ev");
    (s.m || []).forEach(function (k) { ev.appendChild(el("span", "kw", k)); });
    (s.s || []).forEach(function (k) { ev.appendChild(el("span", "miss", k)); });
    (s.f || []).forEach(function (k) { ev.appendChild(el("span", "forb", "forbidden: " + k)); });
    (s.z || []).forEach(function (z) { ev.appendChild(el("span", "fz", z[0] + " ≈ " + z[1] + " (" + z[2] + ")")); });
    if (ev.childNodes.length) box.appendChild(ev);
    (s.o || []).forEach(function (n) { box.appendChild(el("div", "notes", n)); });
    if (s.u && s.u.length) {
      var un = el("div", "unsup");
      un.appendChild(el("span", "note", "not supported by the context: "));
      s.u.forEach(function (c) { var x = el("span", "claim", c[0]); x.title = "support " + c[1]; un.appendChild(x); });
      box.appendChild(un);
    }
    return box;
  }
  function why(it) {
    var k = it.k;
    if (k.e) return names.candidate + ": request failed";
    var parts = [];
    if (k.f && k.f.length) parts.push("forbidden: " + k.f.join(", "));
    if (k.s && k.s.length && k.p < k.n) parts.push("missing: " + k.s.join(", "));
    return parts.length ? names.candidate + " " + parts.join("; ") : "";
  }
  function row(it) {
    var art = el("article", "item");
    art.dataset.id = it.i;
    var head = el("header");
    head.appendChild(el("code", null, it.i));
    (it.t || []).forEach(function (t) { head.appendChild(el("span", "tag", t)); });
    if (it.g === "regressed" || it.g === "both_fail") {
      var w = why(it);
      if (w) head.appendChild(el("span", "why", w));
    }
    art.appendChild(head);
    art.appendChild(el("p", "question", it.q));
    var sides = el("div", "sides");
    sides.appendChild(side(names.current, it.c, "current"));
    sides.appendChild(side(names.candidate, it.k, "candidate"));
    art.appendChild(sides);
    return art;
  }
  function page(key) {
    var g = groups[key];
    var end = Math.min(g.shown + PAGE, g.list.length);
    var frag = document.createDocumentFragment();
    for (var i = g.shown; i < end; i++) frag.appendChild(row(g.list[i]));
    g.rows.appendChild(frag);
    g.shown = end;
    g.more.hidden = g.shown >= g.list.length;
    g.more.textContent = "Show more (" + (g.list.length - g.shown) + " left)";
  }
  function matches(it, text, tag, group) {
    if (group && it.g !== group) return false;
    if (tag && (it.t || []).indexOf(tag) < 0) return false;
    if (!text) return true;
    var hay = (it.i + "\n" + it.q + "\n" + answerText(it.c) + "\n" + answerText(it.k)).toLowerCase();
    return hay.indexOf(text) >= 0;
  }
  function apply() {
    var text = filterBox.value.trim().toLowerCase();
    var tag = tagBox.value, group = groupBox.value, total = 0;
    Object.keys(groups).forEach(function (k) { var g = groups[k]; g.list = []; g.shown = 0; g.rows.textContent = ""; });
    items.forEach(function (it) {
      if (groups[it.g] && matches(it, text, tag, group)) groups[it.g].list.push(it);
    });
    Object.keys(groups).forEach(function (k) {
      var g = groups[k];
      total += g.list.length;
      g.el.querySelector("summary .count").textContent = "(" + g.list.length + (g.list.length !== +g.el.querySelector("summary .count").dataset.total ? " of " + g.el.querySelector("summary .count").dataset.total : "") + ")";
      g.el.hidden = !!group && k !== group;
      page(k);
    });
    shownLabel.textContent = total + " of " + items.length + " items";
    var h = [];
    if (text) h.push("q=" + encodeURIComponent(text));
    if (tag) h.push("tag=" + encodeURIComponent(tag));
    if (group) h.push("group=" + encodeURIComponent(group));
    if (history.replaceState) history.replaceState(null, "", h.length ? "#" + h.join("&") : location.pathname + location.search);
  }
  // A filtered view can be shared as a link: report.html#q=refund&tag=billing&group=regressed
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("="), v = decodeURIComponent(p[1] || "");
    if (p[0] === "q") filterBox.value = v;
    if (p[0] === "tag") tagBox.value = v;
    if (p[0] === "group") groupBox.value = v;
  });
  var timer = null;
  filterBox.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 120); });
  tagBox.addEventListener("change", apply);
  groupBox.addEventListener("change", apply);
  apply();
})();
