"""Option definitions shared by the CLI and the pytest plugin, defined once (DESIGN principle 9).

Like pytest-benchmark, each option is one :class:`OptionSpec` that both front ends render: the CLI
as ``--<name>`` (click), the pytest plugin as ``--harness-<name>`` plus the ini key
``harness_<name>`` (pytest.ini / ``[tool.pytest.ini_options]``). Defaults live here only; the diff
defaults equal :class:`harness.diff.DiffSettings`'.

Per-case thresholds are parsed here too, at the edge, into :class:`Threshold` values::

    [SCOPE: ]METRIC OP VALUE

    ndcg@10 >= 0.5                     global: every case must reach 0.5
    topic=storage: fact_recall >= 0.6  every case tagged topic=storage
    case-007: answer_contains >= 1     one case, by id
    format_critical_fail <= 0          a maximum, for a lower-is-better metric
    ndcg@10=0.5                        "at least as good as 0.5" in the metric's own direction

``>=`` is a floor and ``<=`` a ceiling, whatever the metric; ``=`` takes the direction the run
records for the metric (``greater_is_better``), so ``format_critical_fail=0`` means ``<= 0``. A scope
holding ``=`` is a ``tag=value`` segment, any other scope a case id; the scope ends at a colon followed
by whitespace (metric names may hold colons, e.g. ``format_fail:contract.check``). For one metric and
operator, the most specific scope wins (case over tag over global), so a case or segment can relax a
global limit; scopes at the same level all apply, and a later line for the same scope replaces an
earlier one (command-line thresholds come after the ini's).

Values are compared exactly, never rounded (principle 3).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.diff import DiffSettings
    from harness.types import GoldenCase, Score

__all__ = [
    "ALLOW_NO_BASELINE",
    "ALL_OPTIONS",
    "BASE",
    "DIFF_OPTIONS",
    "MANIFEST",
    "THRESHOLD",
    "UNSCORED",
    "OptionSpec",
    "Threshold",
    "ThresholdCheck",
    "check_thresholds",
    "click_options",
    "diff_settings",
    "effective_thresholds",
    "parse_threshold",
]


@dataclass(frozen=True)
class OptionSpec:
    """One option, rendered by each front end.

    ``name`` gives the flags (CLI ``--name``, pytest ``--harness-name``) and the ini key
    (``harness_name`` unless ``ini`` says otherwise); ``dest`` is the keyword the CLI function
    receives. ``multiple`` options repeat on the command line and are ini line lists.
    """

    name: str
    type: type[Any]
    default: Any
    help: str
    dest: str = ""
    choices: tuple[str, ...] | None = None
    multiple: bool = False
    ini: str = ""
    cli_flags: tuple[str, ...] = ()
    metavar: str | None = None
    pytest_help: str = ""
    flag: bool = False
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def check(self, value: Any) -> Any:
        """``value`` if within this option's range, else ValueError saying the range."""
        if value is None or (self.min is None and self.max is None):
            return value
        low_ok = self.min is None or (value > self.min if self.min_open else value >= self.min)
        high_ok = self.max is None or (value < self.max if self.max_open else value <= self.max)
        if not (low_ok and high_ok) or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"{value!r} is not in the range {self.range_text}")
        return value

    @property
    def range_text(self) -> str:
        lo = "" if self.min is None else f"{self.min:g}{'<' if self.min_open else '<='}"
        hi = "" if self.max is None else f"{'<' if self.max_open else '<='}{self.max:g}"
        return f"{lo}x{hi}"

    @property
    def python_name(self) -> str:
        return self.dest or self.name.replace("-", "_")

    @property
    def cli_flag(self) -> str:
        return f"--{self.name}"

    @property
    def pytest_flag(self) -> str:
        return f"--harness-{self.name}"

    @property
    def pytest_dest(self) -> str:
        return "harness_" + self.name.replace("-", "_")

    @property
    def ini_name(self) -> str:
        return self.ini or "harness_" + self.name.replace("-", "_")

    def convert(self, text: str) -> Any:
        """Parse one string (an ini value) into this option's type; ValueError says what was expected."""
        text = text.strip()
        if self.flag:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.ini_name} = {text!r}: expected true or false")
        if self.choices is not None and text not in self.choices:
            raise ValueError(f"{self.ini_name} = {text!r}: expected one of {', '.join(self.choices)}")
        try:
            value = self.type(text)
        except (TypeError, ValueError):
            raise ValueError(f"{self.ini_name} = {text!r}: expected a {self.type.__name__}") from None
        try:
            return self.check(value)
        except ValueError as exc:
            raise ValueError(f"{self.ini_name} = {text!r}: {exc}") from None


MANIFEST = OptionSpec(
    "manifest", Path, None, "Manifest file (default: harness.toml/.yaml in this folder or above).",
    cli_flags=("-f",), metavar="FILE",
    pytest_help="Manifest whose golden cases become test items (one per case, plus the gate); without it or the "
    "ini key the plugin does nothing.",
)
THRESHOLD = OptionSpec(
    "threshold", str, (), "Per-case threshold '[SCOPE: ]METRIC (>=|<=|=) VALUE', e.g. 'ndcg@10>=0.5' or "
    "'topic=storage: fact_recall >= 0.6'; '=' means at least as good in the metric's direction. Repeatable.",
    multiple=True, ini="harness_thresholds", metavar="RULE",
)
BASE = OptionSpec("base", str, None, "Run id or file to compare with (default: the baseline).", metavar="RUN")
UNSCORED = OptionSpec(
    "unscored", str, "skip", "A thresholded metric that is unscored for a case (None, e.g. no relevance "
    "judgments): 'skip' the threshold (the case skips if nothing else was checked) or 'fail' the case.",
    choices=("skip", "fail"),
)
ALLOW_NO_BASELINE = OptionSpec(
    "allow-no-baseline", bool, False, "Skip (not fail) drop rules when there is no baseline run to compare with; "
    "without it a drop rule with no baseline fails, naming `harness baseline promote`.", flag=True,
)
DIFF_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("alpha", float, 0.05, "Significance level, 0 < alpha < 1.", metavar="FLOAT", min=0, max=1,
               min_open=True, max_open=True),
    OptionSpec("correction", str, "holm", "Multiple-comparison correction across metrics x segments.",
               choices=("holm", "bh", "none")),
    OptionSpec("test", str, "permutation", "Paired test for p-values.", dest="test_name",
               choices=("permutation", "wilcoxon", "bootstrap")),
    OptionSpec("resamples", int, 5000, "Bootstrap/permutation resamples (at least 1).", metavar="N", min=1),
    OptionSpec("seed", int, 0, "Seed of the resampling RNG (0 or more).", metavar="N", min=0),
)
ALL_OPTIONS: tuple[OptionSpec, ...] = (MANIFEST, THRESHOLD, BASE, UNSCORED, ALLOW_NO_BASELINE, *DIFF_OPTIONS)


def diff_settings(values: Mapping[str, Any]) -> DiffSettings:
    """DiffSettings from option values keyed by ``python_name`` (missing keys take the defaults)."""
    from harness.diff import DiffSettings

    get = {o.python_name: values.get(o.python_name, o.default) for o in DIFF_OPTIONS}
    return DiffSettings(alpha=get["alpha"], correction=get["correction"], test=get["test_name"],
                        n_resamples=get["resamples"], seed=get["seed"])


def _click_check(o: OptionSpec) -> Callable[[Any, Any, Any], Any] | None:
    """A click callback applying :meth:`OptionSpec.check` (click's ranges let NaN through)."""
    if o.min is None and o.max is None:
        return None

    def check(_ctx: Any, _param: Any, value: Any) -> Any:
        import click

        try:
            return o.check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return check


def click_options(*specs: OptionSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding these options to a click command (the CLI's rendering of the specs)."""
    import click

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(specs):
            if o.type is Path:
                typ: Any = click.Path(dir_okay=False, path_type=Path)
            elif o.choices is not None:
                typ = click.Choice(list(o.choices))
            elif o.type is float and (o.min is not None or o.max is not None):
                typ = click.FloatRange(o.min, o.max, min_open=o.min_open, max_open=o.max_open)
            elif o.type is int and (o.min is not None or o.max is not None):
                typ = click.IntRange(None if o.min is None else int(o.min), None if o.max is None else int(o.max),
                                     min_open=o.min_open, max_open=o.max_open)
            else:
                typ = o.type
            if o.flag:
                f = click.option(o.cli_flag, *o.cli_flags, o.python_name, is_flag=True, default=bool(o.default),
                                 help=o.help)(f)
                continue
            default = () if o.multiple else o.default
            f = click.option(o.cli_flag, *o.cli_flags, o.python_name, type=typ, default=default,
                             multiple=o.multiple, metavar=o.metavar, help=o.help, callback=_click_check(o),
                             show_default=o.default not in (None, ()))(f)
        return f

    return decorate


# --- thresholds -------------------------------------------------------------------------------------

Op = Literal[">=", "<=", "="]
Level = Literal["case", "tag", "global"]
_LEVEL_RANK: dict[str, int] = {"global": 0, "tag": 1, "case": 2}
_THRESHOLD_RE = re.compile(
    r"^\s*(?:(?P<scope>\S(?:.*?\S)?)\s*:\s+)?(?P<metric>[^\s<>=]+)\s*(?P<op>>=|<=|=)\s*(?P<value>\S+)\s*$"
)
THRESHOLD_SYNTAX = ("'[SCOPE: ]METRIC OP VALUE' with OP one of >=, <=, = (e.g. 'ndcg@10 >= 0.5', "
                    "'topic=storage: fact_recall >= 0.6', 'q7: format_critical_fail <= 0')")


@dataclass(frozen=True)
class Threshold:
    """A limit on one metric for the cases in ``scope`` (None: every case)."""

    metric: str
    op: Op
    value: float
    scope: str | None = None
    source: str = ""

    @property
    def level(self) -> Level:
        if self.scope is None:
            return "global"
        return "tag" if "=" in self.scope else "case"

    def applies_to(self, case: GoldenCase) -> bool:
        if self.scope is None:
            return True
        if "=" in self.scope:
            tag, _, value = self.scope.partition("=")
            return case.tags.get(tag.strip()) == value.strip()
        return case.id == self.scope

    def resolved(self, greater_is_better: bool | None) -> Threshold:
        """``=`` turned into ``>=`` or ``<=`` by the metric's direction (``>=`` while it is unknown)."""
        if self.op != "=":
            return self
        op: Op = "<=" if greater_is_better is False else ">="
        return Threshold(self.metric, op, self.value, self.scope, self.source)

    def __str__(self) -> str:
        rule = f"{self.metric} {self.op} {self.value:g}"
        return rule if self.scope is None else f"{self.scope}: {rule}"


def parse_threshold(text: str, source: str = "") -> Threshold:
    """Parse one threshold line; ValueError names the line and the expected syntax."""
    m = _THRESHOLD_RE.match(text)
    where = f"{source}: " if source else ""
    if m is None:
        raise ValueError(f"{where}cannot parse threshold {text!r}; expected {THRESHOLD_SYNTAX}")
    try:
        value = float(m["value"])
    except ValueError:
        raise ValueError(f"{where}threshold {text!r}: {m['value']!r} is not a number") from None
    if math.isnan(value):
        raise ValueError(f"{where}threshold {text!r}: the limit cannot be NaN")
    scope = m["scope"]
    if scope is not None and "=" in scope and not all(p.strip() for p in scope.partition("=")[::2]):
        raise ValueError(f"{where}threshold {text!r}: a tag scope is 'tag=value'")
    op: Op = m["op"]  # type: ignore[assignment]
    return Threshold(metric=m["metric"], op=op, value=value, scope=scope, source=source)


def parse_thresholds(lines: Iterable[str], source: str = "") -> list[Threshold]:
    """Parse several lines, ignoring blank ones and ``#`` comments."""
    out: list[Threshold] = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            out.append(parse_threshold(text, source))
    return out


def effective_thresholds(thresholds: Sequence[Threshold], case: GoldenCase,
                         directions: Mapping[str, bool]) -> list[Threshold]:
    """The thresholds that apply to ``case``, ``=`` resolved, the most specific scope winning.

    For each (metric, operator), only the thresholds of the most specific level present apply (case,
    then tag, then global); at that level one per scope, the last given.
    """
    chosen: dict[tuple[str, str], tuple[int, dict[str | None, Threshold]]] = {}
    for t in thresholds:
        if not t.applies_to(case):
            continue
        r = t.resolved(directions.get(t.metric))
        key, rank = (r.metric, r.op), _LEVEL_RANK[r.level]
        current = chosen.get(key)
        if current is None or rank > current[0]:
            chosen[key] = (rank, {r.scope: r})
        elif rank == current[0]:
            current[1][r.scope] = r
    return [t for _, by_scope in chosen.values() for t in by_scope.values()]


Status = Literal["pass", "fail", "unscored", "missing"]


@dataclass(frozen=True)
class ThresholdCheck:
    """One threshold checked on one case: pass, fail, unscored (value None) or missing (no such metric)."""

    threshold: Threshold
    status: Status
    value: float | None = None
    explanation: str | None = None
    available: tuple[str, ...] = field(default=(), repr=False)

    def message(self) -> str:
        t = self.threshold
        origin = f" [{t.source}]" if t.source else ""
        if self.status == "missing":
            hint = ""
            if ":" in t.metric:
                hint = "; a scope is separated from the metric by ': ' (a colon and a space)"
            return (f"{t.metric}: no such metric in this run (metrics: {', '.join(self.available) or 'none'})"
                    f"{hint}; threshold {t}{origin}")
        if self.status == "unscored":
            return f"{t.metric}: unscored ({self.explanation or 'no reason given'}); threshold {t}{origin}"
        value = math.nan if self.value is None else self.value
        rel = {"pass": {">=": ">=", "<=": "<="}, "fail": {">=": "<", "<=": ">"}}[self.status][t.op]
        limit = "floor" if t.op == ">=" else "ceiling"
        text = f"{t.metric} = {value:.6g} {rel} {limit} {t.value:g} (threshold {t}){origin}"
        return text + (f": {self.explanation}" if self.explanation else "")


def check_thresholds(thresholds: Sequence[Threshold], case: GoldenCase, scores: Mapping[str, Score],
                     directions: Mapping[str, bool]) -> list[ThresholdCheck]:
    """Check the thresholds that apply to ``case`` against its scores (metric -> Score).

    ``directions`` maps every metric of the run to ``greater_is_better``; a threshold on a metric not
    in it is ``missing`` (a typo must not pass silently).
    """
    out: list[ThresholdCheck] = []
    for t in effective_thresholds(thresholds, case, directions):
        if t.metric not in directions:
            out.append(ThresholdCheck(t, "missing", available=tuple(sorted(directions))))
            continue
        score = scores.get(t.metric)
        value = None if score is None else score.value
        why = "no score recorded for this case" if score is None else score.explanation
        if value is None:
            out.append(ThresholdCheck(t, "unscored", None, why))
            continue
        ok = value >= t.value if t.op == ">=" else value <= t.value
        out.append(ThresholdCheck(t, "pass" if ok else "fail", value, why))
    return out
