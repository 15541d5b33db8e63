"""The layering, read from the source: trainer and service stand side by side on the contract package.

Every module under ``c2f/`` has its imports parsed (ast, so lazy imports inside functions count too); an import of
``c2f.<layer>...`` is an edge to that layer. No edge may run trainer -> service or service -> trainer; neither may
import the jobs layer or the CLI; the contract imports none of them; torch is imported nowhere in service/ or
contract/, nor by the top-level ``c2f`` package itself. The Python API (``c2f/api.py``, a top-level module) stands on
contract and service; it reaches the trainer only inside ``train()``, lazily, and never torch directly.

Benchmarks (``benchmarks/*.py``) use c2f's public API (``import c2f``: ``c2f.train``, ``c2f.load``, ``Model``), the
``c2f`` command or HTTP: none imports ``tests``, a ``_private`` name or a c2f layer, except the few that measure or
break a layer on purpose, each named in BENCHMARK_INTERNALS with the modules it may import and why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import c2f

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "service", "trainer", "jobs", "cli")
# "c2f" is the namespace's own __init__.py: what `import c2f` runs
FORBIDDEN = {
    "contract": {"service", "trainer", "jobs", "cli", "torch"},
    "service": {"trainer", "jobs", "cli", "torch"},
    "trainer": {"service", "jobs", "cli"},
    "jobs": {"cli"},
    "c2f": {"contract", "service", "trainer", "jobs", "cli", "torch"},
    "api": {"jobs", "cli", "torch"},
}
# top-level module -> {layer: the functions allowed to import it (lazily, inside their bodies)}
LAZY_ONLY = {"api": {"trainer": {"train"}}}


def root_of(name: str) -> str:
    """The layer an absolute import reaches: ``c2f.trainer.models`` -> "trainer"; ``torch.nn`` -> "torch"."""
    parts = name.split(".")
    return parts[1] if parts[0] == "c2f" and len(parts) > 1 else parts[0]


def imported_roots(path: Path) -> set[str]:
    """Layers and top-level packages ``path`` imports (absolute imports, at any depth of the module)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(root_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(root_of(node.module))
    return roots


def imports_by_function(path: Path) -> dict[str, set[str]]:
    """Layers and top-level packages ``path`` imports, by the top-level function whose body holds the import
    ("<module>" for imports outside any function: what importing the module runs)."""
    out: dict[str, set[str]] = {}
    for top in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        owner = top.name if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) else "<module>"
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                out.setdefault(owner, set()).update(root_of(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.setdefault(owner, set()).add(root_of(node.module))
    return out


def top_level_modules() -> list[Path]:
    """``c2f/*.py`` besides ``__init__.py``: modules of the namespace itself, such as the Python API."""
    return sorted(p for p in (REPO / "c2f").glob("*.py") if p.name != "__init__.py")


def module_package(module: str) -> str:
    """The rule set a module path answers to: its layer, "c2f" for ``c2f/__init__.py``, or a top-level module's
    own name (``c2f/api.py`` -> "api")."""
    parts = module.split("/")
    if len(parts) > 2:
        return parts[1]
    return "c2f" if parts[1] == "__init__.py" else parts[1].removesuffix(".py")


def import_edges() -> dict[str, set[str]]:
    """module path -> the project packages and torch it imports."""
    edges: dict[str, set[str]] = {"c2f/__init__.py": imported_roots(REPO / "c2f" / "__init__.py")}
    for path in top_level_modules():
        edges[str(path.relative_to(REPO))] = imported_roots(path) & {*PACKAGES, "torch"}
    for package in PACKAGES:
        for path in sorted((REPO / "c2f" / package).rglob("*.py")):
            edges[str(path.relative_to(REPO))] = imported_roots(path) & {*PACKAGES, "torch"}
    return edges


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, roots in edges.items():
        package = module_package(module)
        for root in sorted(roots & FORBIDDEN.get(package, set())):
            out.append(f"{module} imports {root}")
    return out


def test_no_forbidden_import_edges() -> None:
    edges = import_edges()
    assert len(edges) > 40  # every package was read
    assert violations(edges) == []


def test_top_level_modules_import_the_trainer_only_where_allowed() -> None:
    """Every top-level module has rules; ``import c2f.api`` (and ``c2f.load``) never runs a trainer import: only
    the functions named in LAZY_ONLY import those layers, inside their bodies."""
    modules = top_level_modules()
    assert "api.py" in {p.name for p in modules}
    for path in modules:
        name = path.stem
        assert name in FORBIDDEN, f"c2f/{path.name} is a new top-level module: give it rules in FORBIDDEN"
        for owner, roots in imports_by_function(path).items():
            for layer, allowed in LAZY_ONLY.get(name, {}).items():
                if layer in roots:
                    assert owner in allowed, f"c2f/{path.name}: {owner} imports {layer} (only {sorted(allowed)} may)"


def test_the_check_catches_an_edge(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from c2f.trainer.models import UD\n    import torch.nn\n")
    assert imported_roots(module) == {"trainer", "torch"}
    assert violations({"c2f/service/m.py": {"trainer", "torch"}}) == [
        "c2f/service/m.py imports torch",
        "c2f/service/m.py imports trainer",
    ]
    assert violations({"c2f/__init__.py": {"torch"}}) == ["c2f/__init__.py imports torch"]
    assert violations({"c2f/api.py": {"contract", "service", "trainer", "torch"}}) == ["c2f/api.py imports torch"]
    module.write_text("import c2f.contract\ndef load():\n  import c2f.service\ndef train():\n  import c2f.trainer\n")
    assert imports_by_function(module) == {"<module>": {"contract"}, "load": {"service"}, "train": {"trainer"}}


def test_nothing_but_c2f_is_a_top_level_package() -> None:
    """One namespace: the old top-level folders are gone, and pyproject installs only ``c2f``."""
    for package in PACKAGES:
        assert not (REPO / package).exists(), f"{package}/ at the top level: it belongs under c2f/"
    assert 'include = ["c2f*"]' in (REPO / "pyproject.toml").read_text()


def benchmark_imports(path: Path) -> set[str]:
    """Every module and name ``path`` imports, dotted: ``import c2f.x`` -> "c2f.x"; ``from c2f.x import y`` ->
    "c2f.x.y"; ``importlib.import_module("m")`` and ``__import__("m")`` with a literal -> "m"; a relative import ->
    "." + its module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names.update(f"{module}.{alias.name}" if module.strip(".") else module + alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


# What a benchmark may import of c2f without reason: the package itself and the names it exports (c2f.__all__).
PUBLIC_C2F = frozenset({"c2f", *(f"c2f.{name}" for name in c2f.__all__)})

# benchmark -> (the c2f modules it may import besides the public ones, why). Only benchmarks that measure or break a
# layer itself are here; every other one uses the public API, the `c2f` command or HTTP.
BENCHMARK_INTERNALS: dict[str, tuple[tuple[str, ...], str]] = {
    "benchmarks/artifacts.py": (
        ("c2f.contract.artifact",),
        "fixture artifacts of random arrays, published as the exporter publishes (no public call takes raw arrays)",
    ),
    "benchmarks/jobs.py": (
        ("c2f.jobs.worker", "c2f.service.jobs", "c2f.service.settings"),
        "fault injection: a job enqueued exactly as the service enqueues one, workers configured from Settings",
    ),
    "benchmarks/chaos.py": (
        ("c2f.jobs.server", "c2f.service.settings"),
        "fault injection: a redis-server of its own (the binary `c2f serve` embeds) and the workers' Settings",
    ),
    "benchmarks/events.py": (
        ("c2f.service.events",),
        "checks that every acknowledged event is in the service's Redis stream, named by the service's stream_key",
    ),
    "benchmarks/serve_bench.py": (
        ("c2f.contract.artifact", "c2f.contract.methods", "c2f.service.scoring"),
        "its in-process part times the service's scorer itself (Recommender, top_n) against numpy and FAISS",
    ),
    "benchmarks/scale.py": (
        ("c2f.trainer", "c2f.contract.config"),
        "times the trainer's phases (METIS, propagation, evaluation) by wrapping its functions in the training process",
    ),
    "benchmarks/served_terms.py": (
        ("c2f.trainer", "c2f.contract"),
        "exports one trained model at many served forms with the exporter's own functions, without retraining",
    ),
    "benchmarks/budget.py": (
        ("c2f.trainer.data", "c2f.trainer.synthetic", "c2f.contract.config"),
        "its popularity floor counts items on the trainer's own split of a seed, which no public call gives",
    ),
    "benchmarks/planted_budget.py": (
        ("c2f.trainer.budget_study",),
        "prints the figures of c2f/trainer/budget_study.py, the study tests/trainer/test_budget.py checks",
    ),
    "benchmarks/train_step.py": (
        ("c2f.trainer", "c2f.contract.config"),
        "micro-benchmark of a training epoch's kernels (Trainer, BPR sampler, sparse products)",
    ),
    "benchmarks/evaluate_timing.py": (("c2f.trainer",), "micro-benchmark of the trainer's full-ranking evaluation"),
    "benchmarks/csv_read.py": (("c2f.trainer.data.readers",), "micro-benchmark of the trainer's two CSV readers"),
}


LAYER = "a c2f layer: use c2f's public API, the c2f command or HTTP"


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def benchmark_violations(
    imports: dict[str, set[str]], internals: dict[str, tuple[tuple[str, ...], str]] | None = None
) -> list[str]:
    """module path -> what it imports (:func:`benchmark_imports`) -> the imports a benchmark may not make:
    ``tests``, private names, relative imports, and c2f beyond its public names unless ``internals`` (default
    BENCHMARK_INTERNALS) allows that module to."""
    internals = BENCHMARK_INTERNALS if internals is None else internals
    out = []
    for module, names in imports.items():
        allowed = internals.get(module, ((), ""))[0]
        for name in sorted(names):
            parts = name.split(".")
            if parts[0] == "tests":
                out.append(f"{module} imports {name} (tests)")
            elif parts[0] == "c2f" and any(p.startswith("_") and not p.startswith("__") for p in parts):
                out.append(f"{module} imports {name} (private to c2f)")
            elif name.startswith("."):
                out.append(f"{module} imports {name} (relative: `python benchmarks/NAME.py` cannot run it)")
            elif parts[0] == "c2f" and name not in PUBLIC_C2F and not any(_within(name, m) for m in allowed):
                out.append(f"{module} imports {name} ({LAYER})")
    return out


def benchmark_modules() -> dict[str, set[str]]:
    return {str(p.relative_to(REPO)): benchmark_imports(p) for p in sorted((REPO / "benchmarks").glob("*.py"))}


def test_benchmarks_import_only_public_c2f_and_never_tests() -> None:
    imports = benchmark_modules()
    assert "benchmarks/__init__.py" in imports and len(imports) > 12  # a package, every module read
    assert any(name.startswith("c2f.") for names in imports.values() for name in names)
    assert benchmark_violations(imports) == []
    # the benchmarks that train or serve through the public API
    for module in ("quality", "train_gowalla", "budget", "scale", "serve_bench"):
        assert "c2f" in imports[f"benchmarks/{module}.py"], module


def test_the_allow_list_of_internals_is_exact() -> None:
    """Every benchmark allowed a layer imports something of each module it is allowed (no stale entry), and says
    why in one line."""
    imports = benchmark_modules()
    for module, (allowed, reason) in BENCHMARK_INTERNALS.items():
        assert module in imports, f"{module}: no such benchmark"
        assert reason and "\n" not in reason and len(reason) <= 120, module
        for prefix in allowed:
            assert prefix.startswith("c2f.") and prefix not in PUBLIC_C2F, prefix
            assert any(_within(name, prefix) for name in imports[module]), f"{module} no longer imports {prefix}"


def test_only_the_script_shim_touches_sys_path() -> None:
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        if path.name != "_as_script.py":
            assert "sys.path" not in path.read_text(encoding="utf-8"), f"{path.name} changes sys.path"


def test_the_benchmark_check_catches_tests_private_names_and_layers(tmp_path: Path) -> None:
    module = tmp_path / "b.py"
    module.write_text(
        "import importlib\n"
        "from c2f.jobs.server import _redis_binary, redis_binary\n"
        "from c2f.trainer.data import readers\n"
        "import c2f._internal.x\n"
        "def f():\n"
        "    from tests.live import free_port\n"
        "    import tests.fixtures\n"
        "    importlib.import_module('tests.reliability')\n"
        "    from .common import ROOT\n"
    )
    names = benchmark_imports(module)
    assert {"c2f.jobs.server._redis_binary", "c2f.jobs.server.redis_binary", "tests.live.free_port"} <= names
    assert benchmark_violations({"benchmarks/b.py": names}) == [
        "benchmarks/b.py imports .common.ROOT (relative: `python benchmarks/NAME.py` cannot run it)",
        "benchmarks/b.py imports c2f._internal.x (private to c2f)",
        "benchmarks/b.py imports c2f.jobs.server._redis_binary (private to c2f)",
        f"benchmarks/b.py imports c2f.jobs.server.redis_binary ({LAYER})",
        f"benchmarks/b.py imports c2f.trainer.data.readers ({LAYER})",
        "benchmarks/b.py imports tests.fixtures (tests)",
        "benchmarks/b.py imports tests.live.free_port (tests)",
        "benchmarks/b.py imports tests.reliability (tests)",
    ]
    public = {"c2f", "c2f.train", "c2f.load", "c2f.Model", "c2f.BudgetError", "benchmarks.common"}
    assert benchmark_violations({"benchmarks/ok.py": public}) == []
    layers = {"c2f.service.scoring.Recommender", "c2f.trainer", "c2f.api.Model", "c2f.trainerx.y"}
    assert benchmark_violations({"benchmarks/b.py": layers}, {}) == [
        f"benchmarks/b.py imports {name} ({LAYER})" for name in sorted(layers)
    ]
    allowed = {"benchmarks/b.py": (("c2f.trainer", "c2f.service.scoring"), "why")}
    assert benchmark_violations({"benchmarks/b.py": layers}, allowed) == [
        f"benchmarks/b.py imports c2f.api.Model ({LAYER})",
        f"benchmarks/b.py imports c2f.trainerx.y ({LAYER})",
    ]
    # an allowed layer is no licence for tests or private names
    assert benchmark_violations({"benchmarks/b.py": {"c2f.trainer._x", "tests.live"}}, allowed) == [
        "benchmarks/b.py imports c2f.trainer._x (private to c2f)",
        "benchmarks/b.py imports tests.live (tests)",
    ]


if __name__ == "__main__":  # print the graph: package -> packages it imports
    graph: dict[str, set[str]] = {}
    for module, roots in import_edges().items():
        package = module_package(module)
        graph.setdefault(package, set()).update(roots - {package})
    for package in (*PACKAGES, *(p.stem for p in top_level_modules())):
        print(f"{package:9s} -> {', '.join(sorted(graph.get(package, set()))) or '(nothing)'}")
    print("violations:", violations(import_edges()) or "none")
    print("benchmark violations:", benchmark_violations(benchmark_modules()) or "none")
