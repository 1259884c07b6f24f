"""The package's import graph, read from the source with ``ast`` (every import counts: at
module level, inside a function, under ``TYPE_CHECKING``), holds the architecture the README
draws:

- no import cycle between modules, nor between rooms (``core/<room>``, the shell
  ``defs``, the front doors ``cli`` and ``serving``, and the top-level modules);
- nothing under ``core`` imports Dagster or the Dagster shell (``mlops_assets.defs``);
- the front doors (``cli``, ``serving``) never import the Dagster shell;
- no module is over 400 lines without saying why in its docstring;
- the README's architecture map names every room.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_assets"
MAX_LINES = 400
# A docstring that gives a reason for a long module says so with this phrase.
LONG_MODULE_REASON = "Long on purpose:"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """Every name ``module`` imports, absolute (``from . import x`` resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def _internal(name: str) -> str | None:
    """The package module ``name`` is or is in (``a.b.func`` -> ``a.b``), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


IMPORTS = {module: _imported(module, path) for module, path in MODULES.items()}
GRAPH = {
    module: {target for name in names if (target := _internal(name)) and target != module}
    for module, names in IMPORTS.items()
}


def room(module: str) -> str:
    """``mlops_assets.core.promotion.gate`` -> ``mlops_assets.core.promotion``; outside
    ``core``, the top-level module or package (``mlops_assets.defs``, ``mlops_assets.cli``)."""
    parts = module.split(".")
    return ".".join(parts[:3] if parts[1:2] == ["core"] else parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph``, as the nodes around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read_from_the_whole_package():
    """The test would pass vacuously on an empty graph: it is not empty."""
    assert "mlops_assets.core.promotion.registration" in MODULES
    assert (
        "mlops_assets.core.modeling.candidate" in GRAPH["mlops_assets.core.promotion.registration"]
    )
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_back():
    """No cycle between modules: a change to one never has to be made in two at once."""
    assert _cycle(GRAPH) is None


def test_no_room_imports_itself_back():
    """Rooms import in one direction: front doors and shell -> domain rooms -> adapters."""
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        here = room(module)
        rooms.setdefault(here, set()).update(room(t) for t in targets if room(t) != here)
    assert _cycle(rooms) is None


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        ("mlops_assets.core", ("dagster", "dagster_aws", "mlops_assets.defs")),
        ("mlops_assets.cli", ("mlops_assets.defs",)),
        ("mlops_assets.serving", ("mlops_assets.defs",)),
        ("mlops_assets.portal", ("mlops_assets.defs", "mlops_assets.cli")),
    ],
)
def test_layers(importers, forbidden):
    """The pure domain and adapters under ``core`` know nothing of Dagster; the command line
    and the API call the use cases the assets call, not the Dagster shell."""
    offending = sorted(
        f"{module} imports {name}"
        for module, names in IMPORTS.items()
        if module == importers or module.startswith(f"{importers}.")
        for name in names
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    )
    assert offending == []


def test_long_modules_say_why():
    """A module over 400 lines is hard to hold in one's head: split it, or say in its
    docstring why it is one piece ("Long on purpose: ...")."""
    unexplained = sorted(
        f"{module} ({lines} lines)"
        for module, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and LONG_MODULE_REASON not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    )
    assert unexplained == []


def test_the_readme_map_names_every_room():
    """Every folder of ``core`` and ``defs``, and every package and module at the top, is in
    the README's architecture map, so the map cannot fall behind the folders."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```", 2)[1]
    expected = [
        f"    {path.name}/"
        for layer in ("core", "defs")
        for path in sorted((PACKAGE / layer).iterdir())
        if path.is_dir() and (path / "__init__.py").exists()
    ] + [
        f"  {path.name}{'/' if path.is_dir() else ''}"
        for path in sorted(PACKAGE.iterdir())
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    ]
    assert [name for name in expected if name not in tree] == []
