"""docs/architecture.md stays the picture of the house: every module has its row, the layers are the contract's.

A module added under ``src/litellm_usersync`` without a row in the module table fails here, and so does a row
naming a module that is gone; the layer table must list ``.importlinter``'s ``layers`` contract, in order.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "litellm_usersync"
DOC = ROOT / "docs" / "architecture.md"

_CELL_NAMES = re.compile(r"`([^`]+)`")


def package_modules() -> set[str]:
    """Every module of the package by its path (``proxy/client``); a sub-package's ``__init__`` is ``proxy/``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.name == "__init__" and rel.parent != Path("."):
            found.add(f"{rel.parent.as_posix()}/")
        else:
            found.add(rel.as_posix())
    return found


def section(text: str, heading: str) -> str:
    """The text of the ``## heading...`` section, up to the next ``## ``."""
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_first_cells(text: str) -> list[str]:
    """The first cell of every body row of the Markdown tables in ``text`` (header and rule rows skipped)."""
    cells = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        first = re.split(r"(?<!\\)\|", line)[1].strip()
        if set(first) <= {"-", ":", " "}:  # the rule under the header
            continue
        cells.append(first)
    return cells[1:] if cells else cells  # the header row


#: a row's first cell: one module (`proxy/client`), or a sub-package and some of its modules (`models/` (`desired`,
#: `live`)): the sub-package's `__init__` and each module named in the parentheses
_ROW = re.compile(r"`(?P<name>[^`]+)`(?:\s*\((?P<group>(?:\s*`[^`]+`\s*,?)+)\))?")


def row_modules(cell: str) -> list[str]:
    """The modules one row names (see :data:`_ROW`); a cell of another form fails with what it should be."""
    match = _ROW.fullmatch(cell)
    assert match, f"a module row starts with `module` or `package/` (`module`, ...), got {cell!r}"
    name, group = match["name"], match["group"]
    if group is None:
        return [name]
    assert name.endswith("/"), f"only a sub-package (`name/`) groups modules: {cell!r}"
    return [name, *(name + m for m in _CELL_NAMES.findall(group))]


def documented_modules(doc: str) -> list[str]:
    return [m for cell in table_first_cells(section(doc, "Modules")) for m in row_modules(cell)]


def documented_layers(doc: str) -> list[frozenset[str]]:
    return [frozenset(_CELL_NAMES.findall(cell)) for cell in table_first_cells(section(doc, "Import layers"))]


def contract_layers(path: Path) -> list[frozenset[str]]:
    config = configparser.ConfigParser()
    config.read(path, encoding="utf-8")
    raw = config["importlinter:contract:layers"]["layers"]
    return [frozenset(p.strip() for p in line.split("|")) for line in raw.strip().splitlines() if line.strip()]


def test_every_module_has_its_row_and_every_row_a_module() -> None:
    doc = DOC.read_text(encoding="utf-8")
    rows = documented_modules(doc)
    assert len(rows) == len(set(rows)), f"modules listed twice: {sorted(r for r in rows if rows.count(r) > 1)}"
    modules = package_modules()
    missing = sorted(modules - set(rows))
    gone = sorted(set(rows) - modules)
    assert not missing, f"docs/architecture.md's module table has no row for {missing}: add one (what it holds)"
    assert not gone, f"docs/architecture.md's module table names modules that do not exist: {gone}"


def test_the_layer_table_is_the_import_contract() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert documented_layers(doc) == contract_layers(ROOT / ".importlinter"), (
        "docs/architecture.md's layer table differs from the `layers` contract in .importlinter (same layers, "
        "same order, the same `a | b` siblings)"
    )


def test_every_sub_package_is_a_layer() -> None:
    """A sub-package outside the contract would fail lint-imports (exhaustive); say so here with its name."""
    layered = set().union(*contract_layers(ROOT / ".importlinter"))
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    top_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert subpackages | top_modules <= layered, sorted((subpackages | top_modules) - layered)


# --------------------------------------------------------------------------------------------------
# the checks themselves fail when they should


def test_a_missing_row_is_found(tmp_path: Path) -> None:
    doc = DOC.read_text(encoding="utf-8")
    without = "\n".join(line for line in doc.splitlines() if not line.startswith("| `plans/brakes`"))
    assert "plans/brakes" in set(package_modules()) - set(documented_modules(without))


def test_a_layer_table_that_differs_is_found(tmp_path: Path) -> None:
    ini = tmp_path / ".importlinter"
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    ini.write_text(text.replace("    apply\n", "    usecases\n    apply\n", 1), encoding="utf-8")
    doc = DOC.read_text(encoding="utf-8")
    assert contract_layers(ini) != documented_layers(doc)
    assert contract_layers(ini)[1] == frozenset({"usecases"})


@pytest.mark.parametrize(
    ("cell", "modules"),
    [
        ("`plans/sync`", ["plans/sync"]),
        ("`models/`", ["models/"]),
        (
            "`proxy/endpoints/` (`users`, `teams`)",
            ["proxy/endpoints/", "proxy/endpoints/users", "proxy/endpoints/teams"],
        ),
    ],
)
def test_a_row_names_one_module_or_a_group_of_one_sub_package(cell: str, modules: list[str]) -> None:
    assert row_modules(cell) == modules


@pytest.mark.parametrize("cell", ["`plans/sync`, `plans/add`", "`plans` (`sync`)", "plans/sync"])
def test_a_row_of_another_form_is_refused(cell: str) -> None:
    with pytest.raises(AssertionError):
        row_modules(cell)


@pytest.mark.parametrize(
    ("line", "first"),
    [
        ("| `proxy` \\| `files` \\| `render` | the proxy client |", "`proxy` \\| `files` \\| `render`"),
        ("| `plans/sync` | `build_plan` |", "`plans/sync`"),
    ],
)
def test_escaped_pipes_stay_in_the_first_cell(line: str, first: str) -> None:
    assert table_first_cells(f"| h | h |\n|---|---|\n{line}") == [first]
