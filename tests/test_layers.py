"""The package's stages import each other in one direction only.

Every import in src/modelyard is read from the source (module-level and lazy, inside functions; not
the `if TYPE_CHECKING:` ones, which never run), mapped to the top-level part it names (`routing`,
`providers`, `gateway.py`, ...), and the graph of parts must have no cycle: a cycle is how an import
loop starts, and how a lower stage ends up knowing a higher one.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "modelyard"

# What the stages may not import, above what the cycle check already forbids: providers know wire
# formats and nothing of routing; server/ knows HTTP and reaches the rest through the gateway.
FORBIDDEN = {
    "providers": {"routing", "execution", "modes", "gateway", "server", "store", "cli", "client"},
    "routing": {"execution", "modes", "gateway", "server", "cli", "client"},
    "execution": {"modes", "gateway", "server", "cli", "client"},
    "config": {"routing", "execution", "modes", "providers", "gateway", "server", "store", "loader"},
    "deployment": {"providers", "routing", "execution", "modes", "gateway", "server"},
    "types": {"routing", "execution", "modes", "providers", "gateway", "server", "config"},
    "errors": {"routing", "execution", "modes", "providers", "gateway", "server", "config"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _module(path: Path) -> list[str]:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return parts


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        lines.add(getattr(sub, "lineno", -1))
    return lines


def _imports(path: Path) -> set[str]:
    """The top-level parts of modelyard that `path` imports."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    here = _module(path)
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", -1) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                bits = alias.name.split(".")
                if bits[0] == "modelyard" and len(bits) > 1:
                    out.add(bits[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    out.add(target[0])
                else:  # `from . import x` at the top: x is the part
                    out.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "modelyard":
                bits = node.module.split(".")
                if len(bits) > 1:
                    out.add(bits[1])
                else:
                    out.update(a.name for a in node.names)
    return out


@functools.cache
def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        part = _part(path)
        deps = {d for d in _imports(path) if d != part and ((SRC / d).is_dir() or (SRC / f"{d}.py").exists())}
        graph.setdefault(part, set()).update(deps)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_parts_of_the_package_import_without_a_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle between parts of src/modelyard: " + " -> ".join(cycle or ())


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_a_lower_stage_does_not_import_a_higher_one(part: str) -> None:
    graph = _graph()
    if part not in graph:
        pytest.skip(f"no {part} in src/modelyard")
    wrong = graph[part] & FORBIDDEN[part]
    assert not wrong, f"{part} imports {sorted(wrong)}"


def test_the_reader_finds_lazy_imports() -> None:
    # the gateway imports routing at module level and the cli imports the gateway inside functions
    graph = _graph()
    assert "routing" in graph["gateway"]
    assert "gateway" in graph["cli"]
