"""The package's import graph: no cycles, and the layers import only downwards (``cli -> tasks -> vltk``).

Every module of the installed package is parsed with :mod:`ast` (``vltk/``, ``tasks/`` as ``vltk.tasks``,
``cli/`` as ``vltk.cli``, found where the import system finds them) and every import statement becomes an
edge, wherever it stands: at module level, inside functions and methods, under ``try``/``if``. How an
import counts:

- ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import c`` is an edge to the module ``a.b.c`` when
  ``c`` is a submodule, else to ``a.b`` (its ``__init__``, which defines or re-exports ``c``). Relative
  imports are resolved first.
- Importing a submodule runs its parent packages' ``__init__`` first, but that implicit step is not an
  edge: a package ``__init__`` that re-exports its submodules is the normal shape. A submodule that
  imports names *from its own package* (``from vltk.rnn import CELLS`` in ``vltk/rnn/stacked.py`` while
  ``vltk/rnn/__init__.py`` imports ``stacked``) is a cycle: import from the defining module instead.
- Imports under ``if TYPE_CHECKING:`` never run and are not edges.
- The one upward import, ``vltk.from_pretrained`` importing :mod:`vltk.tasks.pretrained` inside the
  function (the facade), is allowed by the layer rule and left out of the cycle check: it runs only when
  called, after both packages are imported. Moved to module level it would be a cycle and fails.

A cycle is a strongly connected component of more than one module; the failure names each with one
concrete loop, file and line of every import in it. The layer rules: the library never imports vltk.tasks or
vltk.cli (but the facade); only DataModule modules in the library import Lightning; vltk.tasks never imports
vltk.cli; and one task's folder (``vltk.tasks.vqa``) never imports another's (``vltk.tasks.captioning``): what
two tasks share belongs in the library.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LIBRARY_EXCLUDES = ("vltk.tasks", "vltk.cli", "vltk.__main__")
"""The shared library is ``vltk.*`` without the tasks, the command line and ``python -m vltk``'s entry point
(``vltk/__main__.py``, which only calls the command line)."""

FACADE = ("vltk", "vltk.tasks.pretrained")
"""(importer, imported): the lazy ``vltk.from_pretrained``, the one import of the tasks from the library."""

LIGHTNING = frozenset({"pytorch_lightning", "lightning", "lightning_fabric"})


@dataclass(frozen=True)
class Import:
    """One import statement's target: ``module`` imports ``target`` at ``file:line``."""

    module: str
    target: str
    where: str  # file:line, the file relative to the repository
    lazy: bool  # inside a function (runs when called, not when the module is imported)


PACKAGES = ("vltk", "vltk.tasks", "vltk.cli")
"""The installed package's top folders (three in the source tree: ``package-dir`` in ``pyproject.toml``)."""


def package_dirs() -> dict[str, Path]:
    """Package name -> the folder it is imported from."""
    return {name: Path(importlib.util.find_spec(name).origin).parent for name in PACKAGES}


def _shown(file: Path, root: Path) -> str:
    return str(file.relative_to(root)) if file.is_relative_to(root) else str(file)


def discover_modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Every Python module under the package folders: dotted name -> file (a package is its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package, folder in packages.items():
        for file in sorted(folder.rglob("*.py")):
            parts = file.relative_to(folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = file
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """The absolute module names every import statement of one file names, with line and laziness."""

    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0  # enclosing functions
        self.found: list[tuple[str, tuple[str, ...], int, bool]] = []  # (base, names, line, lazy)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # never runs: only its else branch counts
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, (), node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        names = tuple(alias.name for alias in node.names)
        self.found.append((base, names, node.lineno, self.depth > 0))


def _within(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``None``: an outside module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def collect_imports(modules: dict[str, Path], root: Path = ROOT) -> tuple[list[Import], dict[str, set[str]]]:
    """Every import edge between ``modules`` and, per module, the outside top-level packages it imports
    (``root``: the folder the messages' file names are relative to)."""
    edges: list[Import] = []
    external: dict[str, set[str]] = {name: set() for name in modules}
    for module, file in modules.items():
        collector = _ImportCollector(module, file.name == "__init__.py")
        collector.visit(ast.parse(file.read_text(encoding="utf-8"), filename=str(file)))
        for base, names, line, lazy in collector.found:
            targets = [f"{base}.{name}" if f"{base}.{name}" in modules else base for name in names] or [base]
            for target in dict.fromkeys(targets):
                inside = _within(target, modules)
                if inside is None:
                    external[module].add(target.split(".")[0])
                elif inside != module:
                    edges.append(Import(module, inside, f"{_shown(file, root)}:{line}", lazy))
    return edges, external


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def one_loop(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest loop ``[a, b, ..., a]`` through the component's first module, inside the component."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is not a cycle")


def import_cycles(edges: list[Import], modules: dict[str, Path]) -> list[str]:
    """One message per cycle: its modules and one loop, with file:line of each import."""
    counted = [edge for edge in edges if not (edge.lazy and (edge.module, edge.target) == FACADE)]
    graph: dict[str, set[str]] = {name: set() for name in modules}
    first: dict[tuple[str, str], Import] = {}
    for edge in counted:
        graph[edge.module].add(edge.target)
        first.setdefault((edge.module, edge.target), edge)
    messages = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        loop = one_loop(component, graph)
        steps = [f"{a} -> {b} ({first[a, b].where})" for a, b in zip(loop, loop[1:])]
        messages.append(f"cycle of {len(component)} modules {component}:\n    " + "\n    ".join(steps))
    return messages


def in_library(module: str) -> bool:
    return not any(module == package or module.startswith(package + ".") for package in LIBRARY_EXCLUDES)


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def task_folder(module: str, modules: dict[str, Path]) -> str | None:
    """``vltk.tasks.<task>`` for a module inside a task's folder (a package under vltk.tasks), else None:
    one task never imports another; what two tasks share belongs in the library."""
    parts = module.split(".")
    if len(parts) < 3 or parts[:2] != ["vltk", "tasks"]:
        return None
    folder = ".".join(parts[:3])
    return folder if modules.get(folder, Path()).name == "__init__.py" else None


def defines_datamodule(file: Path) -> bool:
    """Whether the file defines a class whose base is (spelled) ``LightningDataModule``."""
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                if name == "LightningDataModule":
                    return True
    return False


def layer_violations(
    edges: list[Import], external: dict[str, set[str]], modules: dict[str, Path], root: Path = ROOT
) -> list[str]:
    """Imports against the layer rules (module docstring of this file; ``docs/architecture.md``)."""
    problems = []
    for edge in edges:
        upward = under(edge.target, "vltk.tasks") or under(edge.target, "vltk.cli")
        if in_library(edge.module) and upward and not (edge.lazy and (edge.module, edge.target) == FACADE):
            problems.append(f"{edge.where}: the library module {edge.module} imports {edge.target}")
        if under(edge.module, "vltk.tasks") and under(edge.target, "vltk.cli"):
            problems.append(f"{edge.where}: the task module {edge.module} imports {edge.target}")
        source, target = task_folder(edge.module, modules), task_folder(edge.target, modules)
        if source and target and source != target:
            problems.append(f"{edge.where}: the {source} task imports the {target} task ({edge.target})")
    for module, names in sorted(external.items()):
        lightning = sorted(names & LIGHTNING)
        if not lightning or not in_library(module):
            continue
        if module.rsplit(".", 1)[-1] == "datamodule" or defines_datamodule(modules[module]):
            continue
        problems.append(
            f"{_shown(modules[module], root)}: the library module {module} imports "
            f"{', '.join(lightning)} (only DataModules may; Lightning systems live in vltk.tasks)"
        )
    return problems


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Import], dict[str, set[str]]]:
    modules = discover_modules(package_dirs())
    edges, external = collect_imports(modules)
    return modules, edges, external


def test_the_walk_sees_the_whole_package(graph):
    modules, edges, external = graph
    expected = {"vltk", "vltk.tasks", "vltk.cli.main", "vltk.rnn.stacked", "vltk.tasks.vqa.validate"}
    assert expected <= set(modules)
    assert len(modules) > 100
    lazy = {(edge.module, edge.target) for edge in edges if edge.lazy}
    assert FACADE in lazy  # an import inside a function is an edge
    assert "torch" in external["vltk.rnn.stacked"]


def test_no_import_cycles(graph):
    modules, edges, _ = graph
    cycles = import_cycles(edges, modules)
    assert not cycles, "import cycles (import from the defining module):\n" + "\n".join(cycles)


def test_layers_import_only_downwards(graph):
    modules, edges, external = graph
    problems = layer_violations(edges, external, modules)
    assert not problems, "imports against the layer rules:\n" + "\n".join(problems)


# --- the walker itself, on a package made for the purpose ------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / "vltk" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return discover_modules({"vltk": tmp_path / "vltk"})


def test_a_re_export_used_by_its_own_submodule_is_a_cycle(tmp_path):
    modules = _package(
        tmp_path,
        {
            "__init__.py": "",
            "rnn/__init__.py": "from vltk.rnn.stacked import Stacked\nCELLS = {}\n",
            "rnn/stacked.py": "class Stacked:\n    def __init__(self):\n        from vltk.rnn import CELLS\n",
            "rnn/cells.py": "from . import stacked\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from vltk.rnn import CELLS\n",
        },
    )
    edges, _ = collect_imports(modules, tmp_path)
    found = {(edge.module, edge.target, edge.lazy) for edge in edges}
    assert ("vltk.rnn.stacked", "vltk.rnn", True) in found  # function-level import
    assert ("vltk.rnn.cells", "vltk.rnn.stacked", False) in found  # relative `from . import submodule`
    assert not any(edge.module == "vltk.rnn.cells" and edge.target == "vltk.rnn" for edge in edges)
    (message,) = import_cycles(edges, modules)
    assert "['vltk.rnn', 'vltk.rnn.stacked']" in message
    assert "vltk.rnn.stacked -> vltk.rnn (vltk/rnn/stacked.py:3)" in message


def test_the_layer_rules_catch_upward_and_lightning_imports(tmp_path):
    modules = _package(
        tmp_path,
        {
            "__init__.py": "import vltk.tasks.pretrained\n",
            "tasks/__init__.py": "",
            "tasks/pretrained.py": "def f():\n    import vltk.cli.main\n",
            "tasks/vqa/__init__.py": "",
            "tasks/vqa/predict.py": "from vltk.tasks.captioning.predict import f\n",
            "tasks/captioning/__init__.py": "",
            "tasks/captioning/predict.py": "def f(): ...\n",
            "cli/__init__.py": "",
            "cli/main.py": "import vltk.tasks\n",
            "data/__init__.py": "",
            "data/loader.py": "import pytorch_lightning as pl\n",
            "data/datamodule.py": "import lightning.pytorch as pl\n",
            "data/other.py": "import pytorch_lightning as pl\nclass M(pl.LightningDataModule): ...\n",
        },
    )
    edges, external = collect_imports(modules, tmp_path)
    problems = layer_violations(edges, external, modules, tmp_path)
    assert any("the library module vltk imports vltk.tasks.pretrained" in p for p in problems)  # not lazy
    assert any("vltk.tasks.pretrained imports vltk.cli.main" in p for p in problems)
    assert any("vltk.data.loader imports pytorch_lightning" in p for p in problems)
    assert any("the vltk.tasks.vqa task imports the vltk.tasks.captioning task" in p for p in problems)
    assert not any("vltk.data.datamodule" in p or "vltk.data.other" in p for p in problems)
    assert len(problems) == 4
