"""The package's layering, read from the source: every import (module level or inside a
function) of every module of swiftformer_tf/, checked for cycles and for the rules of the
layout (checkpoints is a leaf over variants and io_utils, which import nothing of the
package; the exporter does not know the trainer)."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "swiftformer_tf")


def _module_name(path):
    relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _imports():
    """{module: {imported swiftformer_tf modules}}, submodules named in from-imports included."""
    graph = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = _module_name(path)
            package = module if name == "__init__.py" else module.rpartition(".")[0]
            targets = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Import):
                    targets |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                        + ([base] if base else []))
                    targets.add(base)
                    targets |= {f"{base}.{a.name}" for a in node.names}
            graph[module] = {t for t in targets if t.startswith("swiftformer_tf")}
    modules = set(graph)
    return {m: {t for t in ts if t in modules and t != m} for m, ts in graph.items()}


def _depends(graph, module):
    seen, todo = set(), [module]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_import_cycle():
    graph = _imports()
    # The package's __init__ re-exports everything; a module importing the package itself
    # (``from swiftformer_tf import kernels``) goes through it, so cycles are looked for
    # between modules, with the bare package left out.
    graph = {m: ts - {"swiftformer_tf"} for m, ts in graph.items() if m != "swiftformer_tf"}
    cycles = [m for m in graph if m in _depends(graph, m)]
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


def test_checkpoints_is_a_leaf_and_the_exporter_does_not_know_the_trainer():
    graph = _imports()
    for module, targets in graph.items():
        if module.startswith("swiftformer_tf.checkpoints"):
            outside = {t for t in targets if not t.startswith("swiftformer_tf.checkpoints")}
            assert outside <= {"swiftformer_tf.variants", "swiftformer_tf.io_utils"}, \
                (module, outside)
        if module in ("swiftformer_tf.variants", "swiftformer_tf.io_utils"):
            assert not any(t.startswith("swiftformer_tf.") for t in targets), module
        if module.startswith("swiftformer_tf.lite"):
            assert not any(t.startswith("swiftformer_tf.training") for t in targets), module
    assert "swiftformer_tf.checkpoints.transfer" in graph  # the walk saw the package
