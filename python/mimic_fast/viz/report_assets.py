"""The report page's fixed parts: its style sheet and its script (inlined into the page,
so it works from ``file://`` with no server and nothing fetched).

The script reads the pairs from the page's JSON block and builds every element with
``textContent`` (never ``innerHTML``): keys, paths and error texts come from user files.
It shows one page of the gallery at a time (``#page=N``), opens a pair's picture and
metadata on click (``#pair=N``, N = the pair's position in index.jsonl), reports a
picture that does not load with ``console.error``, and marks ``<html data-rendered>``
when it has run to the end.
"""

from __future__ import annotations

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 16px 40px; color: #1a1a1a; }
h1 { font-size: 22px; margin: 18px 0 2px; }
h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin: 0 0 8px; word-break: break-all; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
td.n, th.n { text-align: right; }
table.rows tr:nth-child(even) { background: #f4f4f4; }
table.rows th { border-bottom: 1px solid #bbb; }
td.path { word-break: break-all; max-width: 560px; }
.failed { color: #b00020; }
.pending { color: #8a6d00; }
.plot { max-width: 100%; border: 1px solid #eee; }
ul.errors { padding-left: 18px; }
ul.errors li { word-break: break-all; margin: 2px 0; }
nav.pager { margin: 8px 0; display: flex; gap: 12px; align-items: center; }
#gallery { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); }
.card { display: flex; flex-direction: column; gap: 4px; padding: 6px; border: 1px solid #ccc;
        border-radius: 4px; background: #fff; cursor: pointer; text-align: left; font: inherit; }
.card:hover { border-color: #4a7bd0; }
.thumb { width: 100%; height: auto; }
.caption { font-size: 12px; color: #333; word-break: break-all; }
.missing { padding: 30px 8px; background: #fde8e8; color: #b00020; font-size: 12px; }
dialog { max-width: 96vw; max-height: 94vh; overflow: auto; }
dialog .full { max-width: 100%; height: auto; }
dialog table.meta td { font-family: ui-monospace, monospace; font-size: 12px;
                       word-break: break-all; white-space: pre-wrap; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const gallery = document.getElementById("gallery");
  const pagers = document.querySelectorAll("nav.pager");
  const dialog = document.getElementById("pair-dialog");
  const detail = document.getElementById("pair-detail");
  const pages = Math.max(1, Math.ceil(data.pairs.length / data.perPage));
  let page = 1;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function picture(p, cls) {
    const img = el("img", cls);
    img.alt = "patch correspondences of pair " + p.key;
    img.addEventListener("load", function () { img.dataset.loaded = "1"; });
    img.addEventListener("error", function () {
      console.error("picture missing: " + p.picture);
      img.replaceWith(el("div", "missing", "picture missing: " + p.picture));
    });
    img.src = p.picture;
    return img;
  }

  function showPage(n) {
    page = Math.min(Math.max(1, n), pages);
    gallery.replaceChildren();
    for (const p of data.pairs.slice((page - 1) * data.perPage, page * data.perPage)) {
      const card = el("button", "card");
      card.type = "button";
      card.append(picture(p, "thumb"), el("span", "caption", p.caption));
      card.addEventListener("click", function () { location.hash = "pair=" + p.n; });
      gallery.append(card);
    }
    for (const nav of pagers) {
      const prev = el("button", null, "\u2190 previous");
      const next = el("button", null, "next \u2192");
      prev.type = next.type = "button";
      prev.disabled = page <= 1;
      next.disabled = page >= pages;
      prev.addEventListener("click", function () { location.hash = "page=" + (page - 1); });
      next.addEventListener("click", function () { location.hash = "page=" + (page + 1); });
      nav.replaceChildren(prev, el("span", null, "page " + page + " of " + pages), next);
    }
  }

  function openPair(n) {
    const at = data.pairs.findIndex(function (q) { return q.n === n; });
    if (at < 0) return false;
    const p = data.pairs[at];
    showPage(Math.floor(at / data.perPage) + 1);
    const table = el("table", "meta");
    for (const row of p.meta) {
      const tr = el("tr");
      tr.append(el("th", null, row[0]), el("td", null, row[1]));
      table.append(tr);
    }
    detail.replaceChildren(el("h3", null, p.caption), picture(p, "full"), table);
    if (!dialog.open) dialog.showModal();
    return true;
  }

  function route() {
    const m = /^#(page|pair)=(\d+)$/.exec(location.hash);
    if (m && m[1] === "pair" && openPair(Number(m[2]))) return;
    if (dialog.open) dialog.close();
    showPage(m && m[1] === "page" ? Number(m[2]) : page);
  }

  document.getElementById("pair-close").addEventListener("click", function () {
    dialog.close();
  });
  dialog.addEventListener("close", function () {
    if (location.hash.startsWith("#pair=")) location.hash = "page=" + page;
  });
  window.addEventListener("hashchange", route);
  route();
  document.documentElement.dataset.rendered = "page " + page + " of " + pages;
})();
"""
