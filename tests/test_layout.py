"""The package's layering, read from the source: every import (module level or inside a
function) of every module of swiftformer_tf/, checked for cycles and for the rules of the
layout: errors imports nothing; checkpoints is a leaf over variants, io_utils and errors;
the core (model, layers, forms, loading ...) imports neither the export chain nor the
runtimes; the exporter does not know the trainer; only the command-line tools import the
tools; and no file of the project loads another by path."""

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
            assert outside <= {"swiftformer_tf.variants", "swiftformer_tf.io_utils",
                               "swiftformer_tf.errors"}, (module, outside)
        if module in ("swiftformer_tf.variants", "swiftformer_tf.errors"):
            assert not any(t.startswith("swiftformer_tf.") for t in targets), module
        if module == "swiftformer_tf.io_utils":
            assert targets <= {"swiftformer_tf.errors"}, module
        if module.startswith(("swiftformer_tf.export", "swiftformer_tf.runtime")):
            assert not any(t.startswith("swiftformer_tf.training") for t in targets), module
    assert "swiftformer_tf.checkpoints.transfer" in graph  # the walk saw the package


# The core: what a model is and how it loads. The export chain (swiftformer_tf.export) and the
# runtimes and accelerators (swiftformer_tf.runtime) build on it, never the other way round.
UPPER = ("swiftformer_tf.export", "swiftformer_tf.runtime", "swiftformer_tf.training",
         "swiftformer_tf.android_bench", "swiftformer_tf.cli")


def test_the_core_imports_neither_the_export_chain_nor_the_runtimes():
    graph = _imports()
    core = [m for m in graph if m != "swiftformer_tf" and not m.startswith(UPPER)]
    assert {"swiftformer_tf.model", "swiftformer_tf.forms", "swiftformer_tf.loading",
            "swiftformer_tf.quantizer", "swiftformer_tf.layers"} <= set(core)
    for module in core:
        upward = {t for t in graph[module] if t.startswith(UPPER)}
        assert not upward, f"{module} imports {sorted(upward)}"
    for module in graph:  # the tools sit on top: nothing imports them
        if not module.startswith("swiftformer_tf.cli"):
            assert not any(t.startswith("swiftformer_tf.cli") for t in graph[module]), module


def _project_python_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__",)
                   and not d.endswith(".egg-info")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


# the documented script paths kept for older commands: each puts the checkout on the path
SHIM_FOLDERS = ("tflite", "training", "android_bench")


def test_no_file_loads_another_by_path_and_only_shims_touch_sys_path():
    """Modules import each other by name: nothing executes a project file by its path
    (importlib's spec_from_file_location, runpy), and only the shims add to sys.path."""
    seen = 0
    for path in _project_python_files():
        relative = os.path.relpath(path, ROOT)
        tree = ast.parse(open(path).read())
        seen += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in (
                    "spec_from_file_location", "run_path", "SourceFileLoader"):
                raise AssertionError(f"{relative}:{node.lineno} loads a file by path")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("insert", "append") \
                    and ast.unparse(node.func.value) == "sys.path":
                assert relative.split(os.sep)[0] in SHIM_FOLDERS, \
                    f"{relative}:{node.lineno} changes sys.path"
    assert seen > 50
