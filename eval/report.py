"""A run folder -> ``report.md`` (tables) and PNG plots: accuracy by duration and by category, accuracy vs cost.

    python -m eval report runs/ego

Plots are drawn with Pillow (a core dependency), so a report needs nothing beyond the base install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.runner import RESULTS, SAMPLES
from eval.worker import read_rows
from videomind import InputError

W, BAR_H, PAD, LABEL_W = 900, 26, 16, 260
BLUE, GREY, BLACK, LIGHT = (52, 101, 164), (120, 120, 120), (20, 20, 20), (225, 225, 225)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _table(groups: dict[str, dict[str, Any]], head: str) -> list[str]:
    lines = [f"| {head} | accuracy % | ± SE (clustered) | questions | videos |", "|---|---:|---:|---:|---:|"]
    for name, g in groups.items():
        lines.append(f"| {name} | {_pct(g['accuracy'])} | {_pct(g.get('se'))} | {g['n']} | {g['n_videos']} |")
    return lines


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def bar_chart(path: Path, title: str, groups: dict[str, dict[str, Any]]) -> Path:
    """Horizontal bars of accuracy (%) per group with ±1 clustered SE whiskers and the question count."""
    from PIL import Image, ImageDraw

    items = [(k, g) for k, g in groups.items() if g["accuracy"] is not None]
    h = 2 * PAD + 40 + len(items) * (BAR_H + 8) + 30
    img = Image.new("RGB", (W, h), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(15), _font(12)
    d.text((PAD, PAD), title, fill=BLACK, font=_font(18))
    x0, x1, y = LABEL_W, W - 90, PAD + 40
    scale = (x1 - x0) / 100.0
    for pct in range(0, 101, 25):  # grid
        x = x0 + pct * scale
        d.line([(x, y - 4), (x, h - PAD - 24)], fill=LIGHT)
        d.text((x - 8, h - PAD - 20), f"{pct}%", fill=GREY, font=small)
    for name, g in items:
        acc = 100 * g["accuracy"]
        d.text((PAD, y + 5), str(name)[:34], fill=BLACK, font=font)
        d.rectangle([x0, y, x0 + acc * scale, y + BAR_H], fill=BLUE)
        if g.get("se") is not None:
            lo, hi = max(0.0, acc - 100 * g["se"]), min(100.0, acc + 100 * g["se"])
            cy = y + BAR_H // 2
            d.line([(x0 + lo * scale, cy), (x0 + hi * scale, cy)], fill=BLACK, width=2)
        d.text((x1 + 8, y + 5), f"{acc:.0f}% n={g['n']}", fill=BLACK, font=small)
        y += BAR_H + 8
    img.save(path)
    return path


def scatter(path: Path, title: str, points: list[tuple[str, float, float]], xlabel: str) -> Path:
    """Accuracy (%) against a cost per question (x), one labelled point per group."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (W, 560), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(13), _font(12)
    d.text((PAD, PAD), title, fill=BLACK, font=_font(18))
    left, top, right, bottom = 80, 60, W - 40, 500
    d.rectangle([left, top, right, bottom], outline=GREY)
    xmax = max((x for _, x, _ in points), default=1.0) * 1.1 or 1.0
    for pct in range(0, 101, 25):
        yy = bottom - pct / 100 * (bottom - top)
        d.line([(left, yy), (right, yy)], fill=LIGHT)
        d.text((left - 40, yy - 7), f"{pct}%", fill=GREY, font=small)
    for i in range(5):
        xv = xmax * i / 4
        xx = left + i / 4 * (right - left)
        d.text((xx - 10, bottom + 6), f"{xv:.3g}", fill=GREY, font=small)
    d.text(((left + right) // 2 - 60, bottom + 28), xlabel, fill=BLACK, font=font)
    placed: list[tuple[float, float, float, float]] = []
    for name, x, acc in points:
        px, py = left + x / xmax * (right - left), bottom - acc * (bottom - top)
        d.ellipse([px - 5, py - 5, px + 5, py + 5], fill=BLUE)
        label = str(name)[:28]
        w = d.textlength(label, font=small)
        for dy in (0, 14, -14, 28, -28, 42, -42, 56, -56):  # the first label position that overlaps no other
            box = (px + 8, py - 8 + dy, px + 8 + w, py + 6 + dy)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        d.text((box[0], box[1]), label, fill=BLACK, font=small)
    img.save(path)
    return path


def _cost_points(rows: list[dict], groups: dict[str, dict]) -> tuple[list[tuple[str, float, float]], str]:
    """Per category: (name, mean tokens or seconds per question, accuracy); tokens when any were spent."""
    use_tokens = any(r["tokens"]["prompt"] + r["tokens"]["completion"] for r in rows)
    points = []
    for name in groups:
        rs = [r for r in rows if name in (r.get("categories") or [])] if name != "all" else rows
        if rs:
            cost = [(r["tokens"]["prompt"] + r["tokens"]["completion"]) if use_tokens else r["timings"]["ask_s"]
                    for r in rs]
            points.append((name, sum(cost) / len(cost), sum(bool(r["correct"]) for r in rs) / len(rs)))
    return points, "tokens per question" if use_tokens else "seconds per question"


def _answerer(policy: str) -> str:
    """Who answered, from the policy an answer recorded: ``llm:NAME`` (an LLM's answer, whatever the scorer added
    to it), ``heuristic``, or the heuristic after an LLM whose answer was unusable (its policy then says "evidence
    scoring used" or "extractive fallback" in parentheses)."""
    head, _, detail = (policy or "").partition(" (")
    who = head.split(": ", 1)[0] or "unrecorded"  # "heuristic: multi-scale retrieval ..." -> "heuristic"
    if who != "heuristic" and ("evidence scoring used" in detail or "extractive fallback" in detail):
        return f"heuristic after {who} gave no usable answer"
    return who


def _answered_by(rows: list[dict]) -> str:
    """``heuristic (26 of 26)``: what answered the run's questions, most answers first. The configured agent says
    what was asked for; with policy ``auto`` a weak model (the bundled 135M) is never asked, and an LLM's unusable
    answer is replaced by evidence scoring."""
    counts: dict[str, int] = {}
    for r in rows:
        who = _answerer((r.get("prediction") or {}).get("policy", ""))
        counts[who] = counts.get(who, 0) + 1
    if not counts:
        return "no answers"
    return ", ".join(f"{who} ({n} of {len(rows)})" for who, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))


def write_report(run: Path, out: Path | None = None) -> Path:
    """Write ``report.md`` and the plots for the run folder ``run``; returns the report's path."""
    if not (run / RESULTS).is_file():  # checked before anything is made: a mistyped path leaves no folder behind
        raise InputError(f"{str(run)!r} holds no {RESULTS}: give the --out folder of a finished `eval run`")
    out = out or run
    out.mkdir(parents=True, exist_ok=True)
    res = json.loads((run / RESULTS).read_text())
    selected = set(res["selected_qids"]) if "selected_qids" in res else None  # results.json written before it
    answered = [r for r in read_rows(run / SAMPLES).values() if not r.get("error")
                and (selected is None or r["qid"] in selected)]
    rows = [r for r in answered if r.get("correct") is not None]
    m, c = res["metrics"], res["counts"]
    cfg, git = res["config"], res.get("git") or {}
    o = m["overall"]
    md = [f"# {res['benchmark']}" + (f" ({res['split']})" if res.get("split") else ""), "",
          f"- accuracy: **{_pct(o['accuracy'])}%** ± {_pct(o.get('se'))} (SE clustered by video) on {o['n']} "
          f"questions, {o['n_videos']} videos" if o["accuracy"] is not None else "- accuracy: no scored questions"]
    for key, label in (("m_avg", "M-avg (mean of per-task accuracy)"), ("grounded", "evidence overlaps the truth")):
        if m.get(key) is not None:
            md.append(f"- {label}: **{_pct(m[key])}%**")
    cost = m.get("cost") or {}
    if cost.get("ask_seconds") is not None:
        md.append(f"- cost per question: {cost['ask_seconds']:.2f} s, {cost['tokens']:.0f} tokens")
    md += [f"- answered by: {_answered_by(answered)}",
           f"- agent as configured: backend `{cfg['agent']['backend']}`, policy `{cfg['agent']['policy']}`, "
           f"llm `{cfg['models']['llm']}`, vlm `{cfg['models']['vlm'] or '-'}`",
           f"- git: `{git.get('sha')}`" + (" (uncommitted changes)" if git.get("dirty") else ""),
           f"- questions: {c['selected']} selected, {c['answered']} answered, {c['errors']} errors, "
           f"{c['missing_video_questions']} with missing videos, {c['unreadable_video_questions']} with unreadable "
           f"videos; {c['unlabelled_in_annotations']} in the annotations have no public answer", ""]
    plots = []
    for key, head in (("by_duration", "duration"), ("by_category", "category"), ("by_split", "split"),
                      ("by_domain", "domain"), ("by_level", "level"), ("by_topic", "topic")):
        groups = m.get(key) or {}
        if len(groups) > 1 or (groups and key in ("by_duration", "by_category")):
            md += [f"## Accuracy by {head}", "", *_table(groups, head), ""]
            if key in ("by_duration", "by_category"):
                plots.append(bar_chart(out / f"accuracy_{key}.png", f"{res['benchmark']}: accuracy by {head}",
                                       groups))
                md += [f"![accuracy by {head}]({plots[-1].name})", ""]
    if rows:
        points, xlabel = _cost_points(rows, m.get("by_category") or {"all": {}})
        plots.append(scatter(out / "accuracy_vs_cost.png", f"{res['benchmark']}: accuracy vs {xlabel}", points,
                             xlabel))
        md += ["## Accuracy vs cost", "", f"![accuracy vs cost]({plots[-1].name})", ""]
    if res.get("missing_videos") or res.get("unreadable_videos"):
        md += ["## Videos not evaluated", ""]
        md += [f"- missing: `{v['video']}` ({v['questions']} questions)" for v in res["missing_videos"][:50]]
        md += [f"- unreadable: `{v['video']}`: {v['error']}" for v in res["unreadable_videos"][:50]]
        md.append("")
    if m.get("unextractable"):
        md += ["## Answers that name no option (counted wrong)", ""]
        md += [f"- `{u['qid']}`: {u['text'][:200]!r}" for u in m["unextractable"][:50]]
        md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path
