"""Unit tests of the one registry (harness.registry) and of the one error family (harness.errors)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from harness.cli import HarnessCommand, HarnessGroup, main
from harness.errors import HarnessError, InputError, RegistryError, UnknownNameError
from harness.generate import GENERATORS
from harness.instructions import INSTRUCTIONS
from harness.registry import Built, Registry
from harness.scorers import SCORERS

_WIDGETS = """
from typing import Any, Literal

from harness.registry import Registry

WIDGETS: Registry[Any] = Registry("widget", builtins_module=__name__ + "_builtin")


class Widget:
    spec: dict[str, Any]

    def __init__(self, size: int, ratio: float = 0.5, shape: Literal["round", "square"] = "round",
                 tags: list[str] | None = None) -> None:
        self.size, self.ratio, self.shape, self.tags = size, ratio, shape, tags
"""


@pytest.fixture
def widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh registry (module ``widgets_*``) whose built-ins module registers ``widget`` with the decorator,
    as a plugin would; no entry points unless a test fakes them."""
    name = f"widgets_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(_WIDGETS)
    (tmp_path / f"{name}_builtin.py").write_text(f"from {name} import WIDGETS, Widget\n\n"
                                                 "WIDGETS.register('widget')(Widget)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda *, group: [])
    return importlib.import_module(name)


def test_builtins_load_on_first_use_through_the_decorator(widgets: Any) -> None:
    assert widgets.WIDGETS._entries == {}  # nothing imported before the first lookup
    entry = widgets.WIDGETS.entry("widget")
    assert entry.factory is widgets.Widget and entry.origin == f"{widgets.__name__}:Widget"
    assert [(k.name, k.required) for k in entry.kwargs] == [("size", True), ("ratio", False), ("shape", False),
                                                            ("tags", False)]


def test_register_twice_is_an_error_unless_replaced(widgets: Any) -> None:
    registry: Registry[Any] = widgets.WIDGETS
    registry.names()
    registry.register("widget")(widgets.Widget)  # the same factory again (a module imported twice): no conflict

    def other(size: int) -> object:
        return widgets.Widget(size)

    with pytest.raises(RegistryError, match=r"widget 'widget' is already registered by .*:Widget; pass replace=True"):
        registry.register("widget")(other)
    assert registry.register("widget", replace=True)(other) is other
    assert registry.entry("widget").factory is other
    with pytest.raises(ValueError, match="non-empty"):
        registry.register(" widget")


def test_unknown_name_says_did_you_mean(widgets: Any) -> None:
    with pytest.raises(UnknownNameError) as exc:
        widgets.WIDGETS.build("widgte")
    assert exc.value.message == "unknown widget 'widgte'" and exc.value.hint == "did you mean widget?"
    with pytest.raises(UnknownNameError, match=r"unknown widget 'zzz' \(hint: known: widget\)"):
        widgets.WIDGETS.build("zzz")
    with pytest.raises(UnknownNameError, match=r"unknown scorer 'retreival' \(hint: did you mean retrieval\?\)"):
        SCORERS.build("retreival")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"size": "3"}, "widget 'widget': kwarg 'size' must be int, got '3'"),
        ({"size": True}, "widget 'widget': kwarg 'size' must be int, got True"),
        ({"size": 3, "ratio": "0.5"}, "widget 'widget': kwarg 'ratio' must be float, got '0.5'"),
        ({"size": 3, "shape": "oval"}, "widget 'widget': kwarg 'shape' must be 'round' | 'square', got 'oval'"),
        ({"size": 3, "tags": ["a", 1]}, "widget 'widget': kwarg 'tags' must be list[str] | None, got ['a', 1]"),
        ({}, "widget 'widget': missing kwarg(s) 'size'; widget takes (size: int, ratio: float = 0.5, "
             "shape: 'round' | 'square' = 'round', tags: list[str] | None = None)"),
        ({"size": 3, "colour": "red"}, "widget 'widget': unknown kwarg(s) 'colour'; widget takes (size: int"),
    ],
)
def test_bad_arguments_are_one_line_naming_kind_name_and_argument(
    widgets: Any, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(RegistryError) as exc:
        widgets.WIDGETS.build("widget", args)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    assert isinstance(exc.value, HarnessError) and exc.value.exit_code == 2


def test_real_scorer_arguments_are_validated() -> None:
    with pytest.raises(RegistryError, match=r"^scorer 'groundedness': kwarg 'n_passages' must be int, got '5'$"):
        SCORERS.build("groundedness", {"n_passages": "5"})
    with pytest.raises(RegistryError, match=r"^generator 'extractive': unknown kwarg\(s\) 'max_sentence'"):
        GENERATORS.build("extractive", {"max_sentence": 2})


def test_validated_arguments_are_converted_copies(widgets: Any) -> None:
    tags = ["a"]
    built = widgets.WIDGETS.construct("widget", {"size": 3, "ratio": 1, "tags": tags})
    assert isinstance(built, Built) and isinstance(built.product, widgets.Widget)
    assert built.args == {"size": 3, "ratio": 1.0, "tags": ["a"]} and isinstance(built.product.ratio, float)
    assert built.product.tags == tags and built.product.tags is not tags
    assert built.spec == {"name": "widget", "args": {"size": 3, "ratio": 1, "tags": ["a"]}}
    assert built.spec["args"]["tags"] is not tags


def test_spec_is_recorded_and_rebuilds_the_same_object(widgets: Any) -> None:
    w = widgets.WIDGETS.build("widget", {"size": 4, "shape": "square"})
    assert w.spec == {"name": "widget", "args": {"size": 4, "shape": "square"}}
    again = widgets.WIDGETS.build(w.spec["name"], w.spec["args"])
    assert vars(again) == vars(w)
    scorer = SCORERS.build("retrieval", {"metrics": ["ndcg@10"]})
    assert scorer.spec == {"name": "retrieval", "args": {"metrics": ["ndcg@10"]}}
    assert SCORERS.build(**scorer.spec).metrics() == scorer.metrics()


@dataclasses.dataclass(frozen=True)
class _Frozen:
    size: int


def test_a_product_that_cannot_hold_its_spec_fails_loudly(widgets: Any) -> None:
    widgets.WIDGETS.register("frozen")(_Frozen)
    with pytest.raises(TypeError, match=r"widget 'frozen': _Frozen cannot record the spec"):
        widgets.WIDGETS.build("frozen", {"size": 1})
    assert widgets.WIDGETS.construct("frozen", {"size": 1}).product == _Frozen(1)  # the record keeps it instead


def test_context_fills_what_the_spec_leaves_out() -> None:
    registry: Registry[Any] = Registry("probe", builtins_module="harness.errors", context=("prompt",))

    @registry.register("echo")
    def echo(prompt: str, times: int = 1) -> str:
        return prompt * times

    assert registry.construct("echo", {"times": 2}, context={"prompt": "ab"}).product == "abab"
    assert registry.construct("echo", {"prompt": "x"}, context={"prompt": "ab"}).product == "x"
    assert registry.entry("echo").json_schema()["required"] == []
    with pytest.raises(RegistryError, match="missing kwarg"):
        registry.construct("echo", {}, context={"prompt": None})


def test_plugins_come_from_entry_points_through_the_same_decorator(
    widgets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"{widgets.__name__}_plugin"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(f"""
        from {widgets.__name__} import WIDGETS, Widget

        @WIDGETS.register("gadget")
        def gadget(size: int) -> object:
            return Widget(size)
    """))
    eps = [importlib.metadata.EntryPoint("gadget", module, "harness.widgets"),
           importlib.metadata.EntryPoint("broken", "no_such_module_for_harness_tests", "harness.widgets")]
    calls: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        calls.append(group)
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry: Registry[Any] = widgets.WIDGETS
    assert registry.entry("widget").name == "widget" and calls == []  # a hit loads no plugin
    with pytest.warns(RuntimeWarning, match=r"widget plugin 'broken' .* failed to load and is skipped"):
        built = registry.build("gadget", {"size": 2})
    assert calls == ["harness.widgets"] and built.spec == {"name": "gadget", "args": {"size": 2}}
    plugin, builtin = registry.entry("gadget"), registry.entry("widget")
    assert type(plugin) is type(builtin) and plugin.origin == f"{module}:gadget"
    assert registry.names() == ["gadget", "widget"] and calls == ["harness.widgets"]  # loaded once
    with pytest.raises(RegistryError, match=r"^widget 'gadget': kwarg 'size' must be int"):
        registry.build("gadget", {"size": "2"})


def test_the_three_kinds_share_one_registry_class() -> None:
    for registry, group in ((SCORERS, "harness.scorers"), (GENERATORS, "harness.generators"),
                            (INSTRUCTIONS, "harness.instructions")):
        assert type(registry) is Registry and registry.group == group
    assert SCORERS.entry("retrieval").origin == "harness.scorers.retrieval:retrieval"
    assert INSTRUCTIONS.entry("punctuation:no_comma").origin.startswith("harness.instructions.checks:")


# --- the error family ------------------------------------------------------------------------------


def test_importing_the_errors_does_not_import_click() -> None:
    code = "import harness.errors, sys; assert 'click' not in sys.modules, 'click imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    assert not issubclass(HarnessError, click.ClickException)


class _Teapot(HarnessError):
    exit_code = 4


@click.group(cls=HarnessGroup)
def _group() -> None:
    pass


@_group.command("fail")
@click.option("--kind", default="input")
def _fail(kind: str) -> None:
    if kind == "input":
        raise InputError("cases.jsonl", "not valid JSON", line=3, field="id", hint="check the quotes")
    raise _Teapot("short and stout")


def _reject(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        raise HarnessError("bad --n")
    return value


@click.command(cls=HarnessCommand)
@click.option("--n", callback=_reject)
def _alone(n: str | None) -> None:
    raise HarnessError("body failed")


def test_the_cli_maps_the_family_to_one_line_and_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    result = CliRunner().invoke(_group, ["fail"])
    assert result.exit_code == 2
    assert result.output == "Error: cases.jsonl:3: field 'id': not valid JSON (hint: check the quotes)\n"
    assert CliRunner().invoke(_group, ["fail", "--kind", "teapot"]).exit_code == 4
    assert isinstance(_group.commands["fail"], HarnessCommand)
    alone = CliRunner().invoke(_alone, [])
    assert (alone.exit_code, alone.output) == (2, "Error: body failed\n")
    callback = CliRunner().invoke(_alone, ["--n", "1"])  # an option callback's error, before the body runs
    assert (callback.exit_code, callback.output) == (2, "Error: bad --n\n")


def test_main_prints_error_and_exits_with_the_code(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["ifeval", "--input", str(tmp_path / "absent.jsonl"), "--responses", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "absent.jsonl" in err
