"""An incident snapshot as text (a terminal, a pipe), markdown (an issue, a chat) and JSON: the faces of
:class:`harness.shadow.incident.IncidentSnapshot` that ``harness incident`` prints.

Every face opens on the verdict line (what moved first, when, after which deployment, in which segment, and
what changed), then the deployment timeline and the live manifest ids, the moved signals of the first moved
window (and how many after), the segments hit, the versions before and after with their artifact diff (a
prompt's text diff in a fenced block), then what was tested. Nothing here computes a statistic or a verdict.

User-controlled text (segment values, manifest names, paths, diffs) goes through
:func:`harness.report.xmltext.visible` in plain text and :func:`harness.report.mdtext.md_text` /
:func:`~harness.report.mdtext.md_code` in markdown.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from harness.report.mdtext import md_code, md_text
from harness.report.monitor import num, pval
from harness.report.xmltext import visible
from harness.shadow.incident import IncidentSnapshot, Move, VersionDiff, blind_text, untestable_text

__all__ = ["STATUS_WORD", "incident_json", "incident_text", "short_id"]

Format = Literal["text", "md"]
STATUS_WORD = {"moved": "INCIDENT", "quiet": "QUIET", "cannot_judge": "CANNOT JUDGE"}
MAX_MOVES = 15  # moved-signal rows listed after the first moved window's
Row = list[str]


def short_id(mid: str | None) -> str:
    if mid is None:
        return "(none)"
    return mid if len(mid) <= 12 else mid[:12]


def when(t: dt.datetime, tz: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        local = t.astimezone(ZoneInfo(tz))
    except (KeyError, ValueError):
        local = t
    return local.strftime("%Y-%m-%d %H:%M") + (f" {local.tzname()}" if local.tzname() else "")


def window_text(s: IncidentSnapshot) -> str:
    minutes = s.window_seconds // 60
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def reference_text(s: IncidentSnapshot) -> str:
    how = {"slot": "each window against the same clock time of the reference day(s)",
           "weekday_slot": "each window against the same weekday and clock time of the reference",
           "none": "each window against the whole reference (under 24 h: seasonality not told apart)"}[s.aligned]
    return (f"reference {when(s.reference_start, s.timezone)} .. {when(s.reference_end, s.timezone)}: "
            f"{s.reference_note}; {how}")


def scope_text(s: IncidentSnapshot) -> str:
    return (f"{s.source}, {when(s.since, s.timezone)} .. {when(s.until, s.timezone)}, windows of {window_text(s)}; "
            f"{sum(b.n for b in s.buckets if b.start >= s.since):,} records since --since")


def value_text(m: Move, v: float | None) -> str:
    if v is None:
        return "n/a"
    if m.statistic == "count":
        return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"
    return f"{v:.1%}" if m.statistic == "rate" else num(v)


def move_value(m: Move) -> str:
    if m.statistic == "count":
        share = (f", {m.window_value / m.reference_value:.0%} of expected" if m.reference_value and
                 m.window_value is not None else "")
        return f"{value_text(m, m.reference_value)} → {value_text(m, m.window_value)} (records{share})"
    return f"{value_text(m, m.reference_value)} → {value_text(m, m.window_value)} ({m.statistic})"


def by_manifest_text(m: Move, limit: int = 3) -> str:
    items = sorted(m.by_manifest.items(), key=lambda kv: kv[0])[:limit]
    return ", ".join(f"{short_id(k)[:8]} {value_text(m, v)}" for k, v in items)


def first_moves(s: IncidentSnapshot) -> tuple[list[Move], list[Move]]:
    first = [m for m in s.moves if m.bucket == s.first_moved]
    later = [m for m in s.moves if m.bucket != s.first_moved]
    return first, later


def version_label(s: IncidentSnapshot, mid: str) -> str:
    v = next((v for v in s.versions if v.manifest_id == mid), None)
    if v is None or not v.found:
        return f"{short_id(mid)} (manifest not found)"
    return f"{short_id(mid)} ({v.name}, {v.source})"


def tested_text(s: IncidentSnapshot) -> str:
    t = s.tested
    text = (f"tested {t.n_buckets} windows x {len(t.signals)} signals (the volume included) x {len(t.segments)} "
            f"segments: {t.n_tests:,} tests in one Benjamini-Hochberg family (alpha {t.alpha}: {t.n_volume_tests:,} "
            f"of the volume, {t.n_exact_tests:,} rates by Fisher's exact test), {untestable_text(t)}; "
            f"{t.constant:,} with one value on both sides (nothing could move); {s.better:,} significant "
            f"move{'s' * (s.better != 1)} for the better; windows of {t.bucket_sizes[0]:,}-{t.bucket_sizes[1]:,} "
            "records")
    if t.blind_buckets:
        text += f"; {blind_text(s)}"
    if t.volume_only:
        text += (f"; {len(t.volume_only)} of {t.n_buckets} windows judged on the volume only (too little traffic at "
                 "that time of day, in the reference too)")
    if t.vanished:
        text += f"; gone since the judged time began: {', '.join(t.vanished)}"
    return text


def _rows_deployments(s: IncidentSnapshot) -> tuple[Row, list[Row]]:
    head = ["time", "manifest", "event", "share of window", "window"]
    rows = [[when(d.at, s.timezone), short_id(d.manifest_id), d.event.replace("_", " "), f"{d.share:.0%}", d.bucket]
            for d in s.deployments]
    return head, rows


def _rows_spans(s: IncidentSnapshot) -> tuple[Row, list[Row]]:
    head = ["manifest", "first seen", "last seen", "records", "share since --since", "manifest file"]
    found = {v.manifest_id: v for v in s.versions}
    rows = []
    for sp in s.spans:
        v = found.get(sp.manifest_id)
        where = "" if v is None else (v.source or "") if v.found else "manifest not found"
        rows.append([short_id(sp.manifest_id), when(sp.first_seen, s.timezone), when(sp.last_seen, s.timezone),
                     f"{sp.n:,}", f"{sp.share:.1%}", where])
    return head, rows


def _rows_moves(moves: Sequence[Move]) -> tuple[Row, list[Row]]:
    head = ["window", "signal", "segment", "reference → window", "effect", "p adj", "n ref / window", "by manifest"]
    rows = [[m.window, m.signal, m.segment, move_value(m), f"{m.effect:+.2f}", pval(m.p_adjusted),
             f"{m.n_reference:,} / {m.n_window:,}", by_manifest_text(m)] for m in moves]
    return head, rows


def _rows_hits(s: IncidentSnapshot) -> tuple[Row, list[Row]]:
    head = ["segment", "signals", "moved windows", "largest effect", "first", "specific"]
    rows = [[h.segment, ", ".join(h.signals), str(h.n_windows), f"{h.max_effect:.2f}", h.first_window,
             "yes" if h.specific else "no (every value of the key moved)"] for h in s.segments_hit]
    return head, rows


def _rows_changes(d: VersionDiff) -> tuple[Row, list[Row]]:
    head = ["role", "change", "kind", "version", "sha256", "params"]
    rows = []
    for c in d.changes:
        params = "; ".join(f"{k}: {json.dumps(v[0])} → {json.dumps(v[1])}" for k, v in (c.params_diff or {}).items())
        rows.append([c.role, c.change, c.kind, f"{c.base_version or '—'} → {c.head_version or '—'}",
                     f"{(c.base_sha256 or '—')[:12]} → {(c.head_sha256 or '—')[:12]}", params or "—"])
    return head, rows


def _plain(head: Row, rows: list[Row], indent: str = "  ") -> list[str]:
    cells = [[visible(c) for c in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def _md(head: Row, rows: list[Row], code: Sequence[int] = ()) -> list[str]:
    def cell(i: int, v: str) -> str:
        return md_code(v, cell=True) if i in code and v not in ("", "—") else md_text(v)

    out = ["| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(i, v) for i, v in enumerate(r)) + " |" for r in rows]
    return out


def _fence(text: str) -> str:
    return "`" * max(3, 1 + max((len(r) for r in re.findall("`+", text)), default=0))


def incident_text(s: IncidentSnapshot, *, fmt: Format = "text") -> str:
    md = fmt == "md"
    out: list[str] = []

    def heading(title: str) -> None:
        out.append("")
        out.append(f"## {md_text(title)}" if md else title)

    def table(head: Row, rows: list[Row], code: Sequence[int] = ()) -> None:
        if md:
            out.append("")
        out.extend(_md(head, rows, code) if md else _plain(head, rows))

    def line(text: str) -> None:
        if md:
            out.extend(["", md_text(text)])
        else:
            out.append("  " + visible(text))

    word = STATUS_WORD[s.status]
    if md:
        out.append(f"# Incident snapshot: {md_text(s.project)}")
        out.append("")
        out.append(f"**{word}**: {md_text(s.verdict)}")
        out.append("")
        out.append(md_text(scope_text(s)) + "  ")
        out.append(md_text(reference_text(s)))
    else:
        out.append(f"{word}: {visible(s.verdict)}")
        out.append(f"  {visible(scope_text(s))}")
        out.append(f"  {visible(reference_text(s))}")

    heading("Deployments")
    if s.deployments:
        table(*_rows_deployments(s), code=(1,))
    else:
        line("no manifest id took 5% of a window")
    if s.unknown_records:
        line(f"{s.unknown_records:,} records carry no manifest id (counted as 'unknown').")
    heading("Live manifest ids")
    table(*_rows_spans(s), code=(0,))

    if s.first_moved is not None:
        first, later = first_moves(s)
        heading(f"Moved signals in the first moved window ({s.buckets[s.first_moved].label})")
        table(*_rows_moves(first), code=(1,))
        if later:
            word = "Other" if s.early_moves else "Later"
            heading(f"{word} moves ({len(later):,}; the strongest {min(len(later), MAX_MOVES)})")
            shown = sorted(later, key=lambda m: -abs(m.effect))[:MAX_MOVES]
            table(*_rows_moves(sorted(shown, key=lambda m: (m.bucket, m.signal, m.segment))), code=(1,))
        heading("Segments hit")
        if s.segments_hit:
            table(*_rows_hits(s), code=(1,))
        else:
            line("only the overall traffic moved (no segment value on its own)")
    else:
        heading("Moved signals")
        line("none: " + tested_text(s))
    if s.mix_moves:
        heading(f"Segment mix moves ({len(s.mix_moves):,}; not an incident on their own)")
        rows = [[m.window, m.signal, m.moved, pval(m.p_adjusted)] for m in s.mix_moves[:MAX_MOVES]]
        table(["window", "key", "what moved", "p adj"], rows, code=(1,))

    heading("Versions")
    if not s.versions:
        line("no manifest id in the records")
    for v in s.versions:
        where = f"{v.name}, {v.source}" if v.found else "manifest not found"
        if md:
            out.append(f"- {v.role}: {md_code(v.manifest_id)} ({md_text(where)})")
        else:
            out.append(f"  {v.role:<6} {v.manifest_id} ({visible(where)})")
    for d in s.diffs:
        heading(f"Artifact diff {short_id(d.before)} → {short_id(d.after)}")
        if not d.changes:
            line(d.note or "no artifact differs")
            continue
        table(*_rows_changes(d), code=(0,))
        for c in d.changes:
            if c.text_diff:
                if md:
                    fence = _fence(c.text_diff)
                    out += ["", f"{md_text(c.role)} text diff:", "", f"{fence}diff", c.text_diff.rstrip("\n"), fence]
                else:
                    out.append(f"  {c.role} text diff:")
                    out += ["    " + visible(x) for x in c.text_diff.rstrip("\n").splitlines()]

    heading("Tested")
    line(tested_text(s) + ".")
    line(f"Rule: {s.rule}.")
    if s.notes:
        heading("Notes")
        for n in s.notes:
            out.append(f"- {md_text(n)}" if md else f"  - {visible(n)}")
    return "\n".join(out) + "\n"


def incident_json(s: IncidentSnapshot) -> dict[str, Any]:
    data: dict[str, Any] = s.model_dump(mode="json")
    data["exit_code"] = s.exit_code
    return data
