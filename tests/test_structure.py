"""How the modules fit together, read from the source (no imports run): fastgeo's
modules import each other without a cycle, no module imports the package façade
(``fastgeo/__init__``) instead of the module it uses, and module names are distinct
across the package and the asv suite."""

import ast
import os
from collections import Counter

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "fastgeo")


def _modules():
    """{dotted name: path} of every module of the fastgeo package."""
    out = {}
    for folder, _dirs, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(folder, f)
    return out


MODULES = _modules()


def _is_package(name):
    return MODULES.get(name, "").endswith("__init__.py")


def _imports(name, path):
    """[(imported module, line, the name imported from it or None, inside a function)]
    for every import of a fastgeo module in ``name``'s source."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    here = name if _is_package(name) else name.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "fastgeo":
                        found.append((alias.name, child.lineno, None, inner))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.split(".")[0] == "fastgeo":
                    for alias in child.names:
                        sub = f"{module}.{alias.name}"
                        if sub in MODULES:  # `from pkg import submodule`
                            found.append((sub, child.lineno, None, inner))
                        else:
                            found.append((module, child.lineno, alias.name, inner))
            visit(child, inner)

    visit(tree, False)
    return found


def test_no_import_cycle():
    graph = {name: {m for m, *_ in _imports(name, path) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    # Tarjan's strongly connected components: a component of more than one module is
    # a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
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
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "fastgeo"))
def test_modules_import_what_they_use_not_the_package(name):
    """``import fastgeo`` / ``from fastgeo import MLP`` inside the package hides which
    module a function needs; import that module (``from .mlp import MLP``)."""
    bad = [f"line {line}: {module}" + (f" import {what}" if what else "")
           for module, line, what, _ in _imports(name, MODULES[name])
           if module == "fastgeo"]
    assert bad == []


def test_module_names_are_distinct():
    """No two modules of the package and the asv suite (benchmarks/) share a name."""
    names = [os.path.basename(p) for p in MODULES.values()]
    for f in os.listdir(os.path.join(ROOT, "benchmarks")):
        if f.endswith(".py"):
            names.append(f)
    twice = [n for n, k in Counter(names).items() if k > 1
             and n not in ("__init__.py", "__main__.py")]
    assert twice == []
