"""``mimic-fast report``: one static HTML page of a mined dataset (default
``DIR/report/index.html``), opened from ``file://`` with no server.

The page holds the summary, the rejection reasons, the stats plot (``stats.png``), a table
of the sources (from their manifests), the errors, and a gallery of pairs, a page at a time,
each with its correspondence picture (``pairs/NNNNNN.jpg``, NNNNNN = the pair's position in
index.jsonl) and its metadata on click. Style and script are inlined
(:mod:`mimic_fast.viz.report_assets`); a Content-Security-Policy with a fresh nonce lets
only them run and only local pictures load (``'self'``, and ``file:`` for browsers whose
``'self'`` does not cover a page opened from a file).

Everything shown comes from user files (paths, keys, error texts), so every text is
HTML-escaped in the page and the pairs' JSON block has ``<``, ``>`` and ``&`` escaped.

The output folder must be new, empty, or hold only what this command writes (an earlier
report, finished or not: its index.html says it is one): a folder of other files is
refused. The index.html is written last, atomically.
"""

from __future__ import annotations

import html
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

GENERATOR = "mimic-fast report"
PICTURES = "pairs"
STATS_PNG = "stats.png"
MAX_ERRORS_SHOWN = 1000


class ReportError(RuntimeError):
    """The report cannot be written (one line for the user)."""


@dataclass(frozen=True)
class Report:
    page: Path
    pairs: int  # pairs in the dataset
    pictures: int  # pairs drawn in the gallery


def write_report(dataset: str | Path, out: str | Path | None = None, per_page: int = 24,
                 max_pairs: int = 1000, lines: int = 8, jpeg_quality: int = 85) -> Report:
    """Write the page and its pictures; ``max_pairs``: draw at most this many pairs, evenly
    spread over the index (0: all)."""
    import mimic_fast
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.viz.histogram import overlap_histogram
    from mimic_fast.viz.overview import load_overview

    if per_page < 1:
        raise ReportError(f"--per-page must be at least 1, got {per_page}")
    if max_pairs < 0:
        raise ReportError(f"--max-pairs must be 0 (all) or more, got {max_pairs}")
    dataset = Path(dataset)
    try:
        ov = load_overview(dataset)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise ReportError(str(exc)) from None
    out = Path(out) if out is not None else dataset / "report"
    _claim_folder(out)
    chosen = _spread(len(ov.rows), max_pairs)
    try:
        pairs = _draw_pairs(ov, out / PICTURES, chosen, lines, jpeg_quality)
    except (DataError, KeyError, ValueError) as exc:
        raise ReportError(f"cannot read the pairs of {dataset}: {exc} (mimic-fast verify "
                          "checks the whole dataset)") from None
    overlap_histogram(ov.candidate_overlaps, ov.accepted_overlaps, out / STATS_PNG, ov.low,
                      ov.high, title=f"{ov.name}: patch overlap",
                      rejected=ov.summary.get("rejected", {}))
    page = _page(ov, pairs, per_page, mimic_fast.__version__)
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "index.html")
    return Report(out / "index.html", len(ov.rows), len(pairs))


# --- the output folder -------------------------------------------------------------------------
def _claim_folder(out: Path) -> None:
    """Create ``out`` or take over an earlier report there, finished or not (its old
    pictures removed); refuse a folder holding anything else."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        strange = [p.name for p in out.iterdir() if not _ours(p)]
        if strange:
            raise ReportError(f"{out} holds files that are not a mimic-fast report (e.g. "
                              f"{strange[0]}); choose another --out")
        for p in (out / PICTURES).glob("*.jpg"):
            p.unlink()
    (out / PICTURES).mkdir(parents=True, exist_ok=True)


def _ours(path: Path) -> bool:
    """A file this command writes: the page (saying it is a report), its temporary, the
    plot, the pictures' folder holding pictures only."""
    if path.name == "index.html":
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return f'<meta name="generator" content="{GENERATOR}">' in text
    if path.name == PICTURES and path.is_dir():
        return all(re.fullmatch(r"[0-9]{6}\.jpg", p.name) for p in path.iterdir())
    return path.name in (".index.html.tmp", STATS_PNG) and path.is_file()


def _spread(n: int, most: int) -> list[int]:
    """Positions of at most ``most`` of ``n`` pairs, evenly spread (all when most == 0)."""
    if most == 0 or n <= most:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, most).round().astype(int).tolist()))


# --- the pairs ---------------------------------------------------------------------------------
def _draw_pairs(ov, folder: Path, chosen: list[int], lines: int, quality: int) -> list[dict]:
    from PIL import Image

    from mimic_fast.dataset.reader import iter_samples
    from mimic_fast.viz.correspondences import draw_correspondences, pair_title, view_labels

    from tqdm import tqdm

    want = set(chosen)
    pairs = []
    if not want:
        return pairs
    with tqdm(total=len(want), unit="pair", desc="drawing", disable=None) as bar:  # no tty: off
        for n, s in enumerate(iter_samples(ov.path)):
            if n not in want:
                continue
            bar.update()
            m = s.meta
            fig = draw_correspondences(s.view1, s.view2, m["correspondences"],
                                       patch_size=int(m.get("patch_size") or 16),
                                       title=pair_title(m), labels=view_labels(m), lines=lines)
            name = f"{n:06d}.jpg"
            Image.fromarray(fig.image).save(folder / name, quality=quality)
            pairs.append({"n": n, "key": str(s.key), "picture": f"{PICTURES}/{name}",
                          "caption": _caption(m), "meta": _meta_rows(s.key, m)})
            if len(pairs) == len(want):
                break
    return pairs


def _overlap(meta: dict) -> str:
    v = meta.get("overlap")
    return f"{v:.3f}" if isinstance(v, float) else _text(v)


def _caption(meta: dict) -> str:
    frames = meta.get("frames") or ["?", "?"]
    return (f"{Path(str(meta.get('source', '?'))).name} \u00b7 frames {frames[0]}-{frames[1]} "
            f"\u00b7 overlap {_overlap(meta)}")


def _meta_rows(key: str, m: dict) -> list[list[str]]:
    """[label, text] rows of a pair's metadata (the correspondences as a count)."""
    rows = [["key", key]]
    for field in ("source", "kind", "frames", "times", "paths", "overlap", "counts",
                  "inliers", "matches", "keypoints", "image_size", "original_size", "resize",
                  "patch_size"):
        if field in m:
            rows.append([field, _text(m[field])])
    rows.append(["correspondences", f"{len(m.get('correspondences') or [])} patch pairs"])
    if m.get("H") is not None:
        rows.append(["H (view 1 -> view 2 px)",
                     "\n".join(" ".join(f"{_num(v):>11}" for v in r) for r in m["H"])])
    return rows


def _text(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ", ".join(f"[{_text(x)}]" if isinstance(x, list) else _text(x) for x in v)
    if v is None:
        return "-"
    return _num(v)


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


# --- the page ----------------------------------------------------------------------------------
def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _json_block(obj) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' (so no '</script>'), no U+2028/9."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for ch in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def _page(ov, pairs: list[dict], per_page: int, version: str) -> str:
    from mimic_fast.viz.report_assets import SCRIPT, STYLE

    nonce = secrets.token_urlsafe(16)
    s = ov.summary
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shown = (f"Pictures of {len(pairs)} of the {len(ov.rows)} pairs, evenly spread over the "
             "index." if len(pairs) < len(ov.rows) else f"Pictures of all {len(ov.rows)} pairs.")
    if not ov.rows:
        shown = "The dataset has no pairs."
    data = {"perPage": per_page, "pairs": pairs}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"img-src 'self' file:; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "base-uri 'none'; form-action 'none'\">",
        f"<title>{_e(ov.name)}: mimic-fast report</title>",
        f'<style nonce="{nonce}">{STYLE}</style></head><body>',
        f"<h1>{_e(ov.name)}</h1>",
        f'<p class="sub">{_e(ov.path.resolve())} &middot; mimic-fast {_e(version)} report, '
        f"{_e(when)}</p>",
        "<h2>Summary</h2>", _summary_table(ov),
        "<details><summary>Mining settings (config.json)</summary>",
        _table(["setting", "value"], [[k, _text(v)] for k, v in
                                      ov.config.get("mining", {}).items()]), "</details>",
        "<h2>Rejection reasons</h2>", _reasons_table(s),
        "<h2>Overlap</h2>",
        f'<img class="plot" src="{STATS_PNG}" alt="overlap histogram and rejection reasons">',
        f"<h2>Sources ({len(ov.sources)})</h2>", _sources_table(ov.sources),
        f"<h2>Errors ({len(s.get('errors', []))})</h2>", _errors_list(s.get("errors", [])),
        f"<h2>Pairs</h2><p>{_e(shown)} Click a pair for its metadata. Same "
        "colour = matched patches, grey = no match.</p>",
        '<nav class="pager"></nav><div id="gallery"></div><nav class="pager"></nav>',
        '<dialog id="pair-dialog"><button type="button" id="pair-close">close</button>'
        '<div id="pair-detail"></div></dialog>',
        f'<script type="application/json" id="report-data">{_json_block(data)}</script>',
        f'<script nonce="{nonce}">{SCRIPT}</script>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(),
           row_class=None) -> str:
    out = ['<table class="rows">']
    if any(header):
        out += ["<tr>"] + [f'<th{" class=n" if i in numeric else ""}>{_e(h)}</th>'
                           for i, h in enumerate(header)] + ["</tr>"]
    for k, row in enumerate(rows):
        cls = row_class(k) if row_class else None
        out.append(f'<tr class="{_e(cls)}">' if cls else "<tr>")
        for i, v in enumerate(row):
            cell = "n" if i in numeric else ("path" if header[i] == "source" else None)
            out.append(f'<td class="{cell}">{_e(v)}</td>' if cell else f"<td>{_e(v)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _summary_table(ov) -> str:
    s, mining = ov.summary, ov.config.get("mining", {})
    rows = [
        ["sources", f"{s.get('sources')} ({s.get('sources_done')} done, "
                    f"{s.get('sources_failed')} failed, {s.get('sources_pending')} pending)"],
        ["frames", s.get("frames")], ["candidates", s.get("candidates")],
        ["accepted pairs", s.get("accepted")],
        ["rejected", sum(s.get("rejected", {}).values())],
        ["errors", len(s.get("errors", []))], ["shards", len(s.get("shards", []))],
        ["keep band", f"{ov.low:g} < overlap < {ov.high:g}"],
        ["views", f"{mining.get('size', '?')} px, {mining.get('resize', '?')}"],
        ["seconds (last run)", s.get("seconds")],
        ["candidates/s (last run)", s.get("candidates_per_second")],
        ["engine", f"{s.get('engine')}, {s.get('workers')} workers"],
    ]
    return _table(["", ""], rows)


def _reasons_table(s: dict) -> str:
    total = s.get("candidates") or 0
    rows = [["accepted", s.get("accepted", 0)]]
    rows += sorted(([k, v] for k, v in s.get("rejected", {}).items()), key=lambda r: -r[1])
    for r in rows:
        r.append(f"{100 * r[1] / total:.1f}%" if total else "-")
    return _table(["verdict", "candidates", "share"], rows, numeric={1, 2})


def _sources_table(sources) -> str:
    rows = [[s.index, s.path, s.kind, s.status + (f": {s.error}" if s.error else ""),
             s.frames, s.candidates, s.accepted,
             ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items())) or "-",
             s.errors, f"{s.seconds:.2f}"] for s in sources]
    return _table(["#", "source", "kind", "status", "frames", "candidates", "accepted",
                   "rejected", "errors", "seconds"], rows, numeric={0, 4, 5, 6, 8, 9},
                  row_class=lambda k: sources[k].status if sources[k].status != "done"
                  else None)


def _errors_list(errors: list[dict]) -> str:
    if not errors:
        return "<p>none</p>"
    items = [f"<li><b>{_e(e.get('input', '?'))}</b>: {_e(e.get('error', '?'))}</li>"
             for e in errors[:MAX_ERRORS_SHOWN]]
    more = (f"<p>... and {len(errors) - MAX_ERRORS_SHOWN} more in summary.json</p>"
            if len(errors) > MAX_ERRORS_SHOWN else "")
    return f'<ul class="errors">{"".join(items)}</ul>{more}'
