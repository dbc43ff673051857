"""The package's shape: layers that import only downwards, no import cycle, no reaching into another
class's private state, small modules, one recall function, and a factory grammar that round-trips
for every registered index type (so a new type is covered without editing this file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import vecsearch as vs
from vecsearch import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vecsearch"

# Lowest first; a module may import from its own layer or any lower one. The first matching
# prefix of a module's dotted path (without "vecsearch.") decides its layer.
LAYERS = [
    ("kernels",),
    ("registry", "validation", "ids", "io", "params", "progress", "parallel", "concurrency", "recall"),
    ("codecs", "filtering", "exact", "calibration"),
    ("base",),
    ("indexes",),
    ("factory", "loader", "warmup"),
    ("store", "benchmark", "integrations", "distributed", "cli", "__main__", ""),
]
MAX_MODULE_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    rest = module[len("vecsearch.") :] if module != "vecsearch" else ""
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if rest == prefix or (prefix and rest.startswith(prefix + ".")):
                return level
    raise AssertionError(f"{module}: no layer defined for it in tests/test_architecture.py")


def _imports(module: str, path: Path) -> set[str]:
    """Every vecsearch module ``module`` imports anywhere in its body (function-local imports too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vecsearch"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("vecsearch"):
                continue
            for alias in node.names:  # "from pkg import submodule" imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {name for name in found if name in MODULES}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_import_points_down_the_layers():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_there_is_no_import_cycle():
    # Package __init__ modules import their children by design; a cycle is among the others.
    graph = {m: {t for t in ts if MODULES[t].name != "__init__.py"} for m, ts in GRAPH.items()
             if MODULES[m].name != "__init__.py"}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def _own_private_attributes(tree: ast.AST) -> set[str]:
    """Underscore attributes a module's own classes define (assigned on ``self``/``cls`` or in a class body)."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    own.add(item.name)
                elif isinstance(item, ast.Assign):
                    own.update(t.id for t in item.targets if isinstance(t, ast.Name))
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    own.add(item.target.id)
    return own


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_reads_another_class_private_state():
    """``obj._x`` is allowed on ``self``/``cls``/``super()`` and on attributes the module's own classes
    define; anything else reaches into a class defined elsewhere. Importing a private name of
    another vecsearch module is the same thing."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        own = _own_private_attributes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                value = node.value
                if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                    continue
                if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
                    continue
                if node.attr in own:
                    continue
                found.append(f"{module}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("vecsearch")):
                found.extend(f"{module}:{node.lineno}: imports {a.name}" for a in node.names if _is_private(a.name))
    assert found == []


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_recall_is_defined_once_in_the_repository():
    pattern = re.compile(r"^\s*def (_?recall\w*)\(", re.MULTILINE)  # functions that compute a recall
    definitions = []
    for folder in ("vecsearch", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            definitions.extend(f"{path.relative_to(ROOT)}:{name}" for name in pattern.findall(path.read_text()))
    assert definitions == ["vecsearch/recall.py:recall_per_query",
                           "vecsearch/recall.py:recall_at_k"], definitions


# ---- registry and factory ----------------------------------------------------------------------
@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
def test_factory_examples_round_trip_through_describe(record):
    """Every form's example builds its type, and describe() gives a string that builds it again."""
    dim = 384
    for form in record.forms:
        index = vs.index_factory(dim, form.example, metric="ip")
        assert type(index) is record.cls
        again = vs.index_factory(dim, index.describe(), metric="ip")
        assert type(again) is record.cls and again.describe() == index.describe()


@pytest.mark.parametrize(
    "make",
    [
        lambda: vs.LeanVecIndex(64, "l2", reduced_dim=None, primary="float32"),
        lambda: vs.LeanVecIndex(64, "l2", reduced_dim=None, primary="lvq4x8", M=24),
        lambda: vs.LeanVecIndex(64, "l2", reduced_dim=16, primary="float32"),
        lambda: vs.IVFPQIndex(64, "l2", nlist=32, m=8, nbits=4, opq=True, keep_vectors=True),
        lambda: vs.MultiVectorIndex(64, inner="hnsw", candidate_source="tokens", M=8),
        lambda: vs.MultiVectorIndex(64, inner="IVF16,PQ8", fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=8)),
    ],
)
def test_describe_rebuilds_the_same_kind_for_non_default_settings(make):
    index = make()
    again = vs.index_factory(index.dim, index.describe(), metric=index.metric)
    assert type(again) is type(index) and again.describe() == index.describe()


def test_every_vector_index_type_saves_and_restores_through_the_state_contract(tmp_path):
    """get_state/from_state, as the Ray shard and MultiVector's inner index use it, and vs.load."""
    x = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    for record in registry.all_types():
        if not record.vector_input:
            continue
        index = record.cls(16, "l2", **record.cls.suggested_params(400, 16))
        if record.requires_training:
            index.train(x)
        index.add(x, attributes={"even": np.arange(400) % 2 == 0})
        index.remove([3, 5])
        header, arrays = index.get_state()
        restored = vs.Index.from_state(header, arrays)
        assert type(restored) is record.cls and restored.ntotal == index.ntotal
        for where in (None, {"even": True}):
            np.testing.assert_array_equal(restored.search(x[:8], 5, where=where).ids,
                                          index.search(x[:8], 5, where=where).ids)
        index.save(tmp_path / record.name)
        np.testing.assert_array_equal(vs.load(tmp_path / record.name).search(x[:8], 5).ids,
                                      index.search(x[:8], 5).ids)


def test_a_user_set_default_search_width_is_saved(tmp_path):
    index = vs.HNSWIndex(8, "l2", M=4)
    index.add(np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    index.ef_search = 123
    index.save(tmp_path / "i")
    assert vs.load(tmp_path / "i").ef_search == 123
