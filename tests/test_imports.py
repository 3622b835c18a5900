"""The imports run one way (docs/architecture.md), read from the source with ast.

- No import-time cycle among the trainer's modules, nor among the annotator's: a module-level
  import (class bodies included, function bodies not) of one module by another is an edge.
- A Celery task imports its service inside its body: tasks.py imports no app module at the top,
  so services may import the tasks at theirs.
- annotator/ never imports trainer/, anywhere; the templates the labeling pages use load no
  template library of trainer/.
- trainer/algorithms/ imports neither app, nor webapp, nor Django, anywhere.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("annotator", "trainer", "webapp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in p.parts
    }


ALL = {name: path for app in APPS for name, path in modules(app).items()}


def _targets(node: ast.AST, current: str, is_package: bool) -> list[str]:
    """The project modules an import statement loads (the most specific that exists)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from . import x / from .y import z
        package = current if is_package else current.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in ALL else base for alias in node.names
    ]


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, *, top_level_only: bool) -> set[str]:
    """Modules of the project (or any module, for third parties) that `name` imports."""
    path = ALL[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                or _is_type_checking(child)
            ):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.update(_targets(child, name, path.name == "__init__.py"))
            visit(child)

    visit(tree)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    names = modules(package)
    return {
        name: {t for t in imports(name, top_level_only=True) if t in names and t != name}
        for name in names
    }


@pytest.mark.parametrize("package", ["trainer", "annotator"])
def test_it_finds_no_import_time_cycle_among_an_apps_modules(package):
    assert _cycles(import_graph(package)) == []


def test_it_finds_an_import_time_cycle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("tasks", [name for name in ALL if name.endswith(".tasks")])
def test_it_has_tasks_import_their_services_only_inside_their_bodies(tasks):
    at_the_top = {t for t in imports(tasks, top_level_only=True) if t.split(".")[0] in APPS}
    assert at_the_top == set()


def reached(package: str, forbidden) -> set[tuple[str, str]]:
    """(module, import) pairs of the package, anywhere in a module, that `forbidden` names."""
    found = set()
    for name in modules(package):
        found |= {(name, t) for t in imports(name, top_level_only=False) if forbidden(t)}
    return found


def test_it_has_the_annotator_import_nothing_of_the_trainer():
    assert reached("annotator", lambda t: t.split(".")[0] == "trainer") == set()


def _outside_the_algorithms(target: str) -> bool:
    top = target.split(".")[0]
    if top == "trainer":
        return not target.startswith("trainer.algorithms")
    return top in {"django", "annotator", "webapp", "rest_framework"}


def test_it_has_the_training_algorithms_import_neither_app_nor_django():
    assert reached("trainer/algorithms", _outside_the_algorithms) == set()


LOAD = re.compile(r"{%\s*load\s+([^%]+?)\s*%}")


def test_it_has_the_labeling_pages_templates_load_no_trainer_template_library():
    from django.template.backends.django import get_installed_libraries

    libraries = get_installed_libraries()  # name -> module
    labeling = [ROOT / "templates" / "base.html", *(ROOT / "templates" / "annotator").rglob("*")]
    loaded = {
        (path.name, library)
        for path in labeling
        if path.is_file()
        for match in LOAD.finditer(path.read_text(encoding="utf-8"))
        for library in match.group(1).split()
        if library != "from"
    }
    assert loaded  # the check reads real templates
    from_trainer = {
        (template, library)
        for template, library in loaded
        if libraries.get(library, "").startswith("trainer.")
    }
    assert from_trainer == set()


CURSOR = re.compile(r"\.(chunked_)?cursor\(")


def test_it_keeps_every_database_cursor_of_the_apps_in_webapp_sql():
    """Raw SQL goes through webapp/sql.py (docs/architecture.md): no other module opens a cursor."""
    opened = {
        name
        for name, path in ALL.items()
        if name != "webapp.sql" and CURSOR.search(path.read_text(encoding="utf-8"))
    }
    assert opened == set()
