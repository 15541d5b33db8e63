"""The layering, read from the source: trainer and service stand side by side on the contract package.

Every module's imports are parsed (ast, so lazy imports inside functions count too). No edge may run
trainer -> service or service -> trainer; neither may import the jobs layer or the CLI; the contract imports none of
them; torch is imported nowhere in service/ or contract/.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "service", "trainer", "jobs", "cli")
FORBIDDEN = {
    "contract": {"service", "trainer", "jobs", "cli", "torch"},
    "service": {"trainer", "jobs", "cli", "torch"},
    "trainer": {"service", "jobs", "cli"},
    "jobs": {"cli"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level package names ``path`` imports (absolute imports, at any depth of the module)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def import_edges() -> dict[str, set[str]]:
    """module path -> the project packages and torch it imports."""
    edges: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            edges[str(path.relative_to(REPO))] = imported_roots(path) & {*PACKAGES, "torch"}
    return edges


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, roots in edges.items():
        package = module.split("/")[0]
        for root in sorted(roots & FORBIDDEN.get(package, set())):
            out.append(f"{module} imports {root}")
    return out


def test_no_forbidden_import_edges() -> None:
    edges = import_edges()
    assert len(edges) > 40  # every package was read
    assert violations(edges) == []


def test_the_check_catches_an_edge(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from trainer.models import UD\n    import torch.nn\n")
    assert imported_roots(module) == {"trainer", "torch"}
    assert violations({"service/m.py": {"trainer", "torch"}}) == [
        "service/m.py imports torch",
        "service/m.py imports trainer",
    ]


if __name__ == "__main__":  # print the graph: package -> packages it imports
    graph: dict[str, set[str]] = {}
    for module, roots in import_edges().items():
        graph.setdefault(module.split("/")[0], set()).update(roots - {module.split("/")[0]})
    for package in PACKAGES:
        print(f"{package:9s} -> {', '.join(sorted(graph.get(package, set()))) or '(nothing)'}")
    print("violations:", violations(import_edges()) or "none")
