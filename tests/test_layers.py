"""The import graph: no cycles, and no module imports one of a higher layer (README, "How it is built")."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import backtrader_alltick

PACKAGE = Path(backtrader_alltick.__file__).parent

# Lowest first.  A module may import its own layer and those below it, never one above.
LAYERS = [
    {
        "_version",
        "_starting",
        "redaction",
        "errors",
        "records",
        "calendars",
        "markets",
        "timeframes",
        "symbols",
        "plans",
        "clock",
        "notices",
        "config",
        "progress",
        "recording",
        "token_seal",
        "param_types",
        "sqlite_files",
    },
    {"wire"},
    {"transport"},
    {
        "bars",
        "cache",
        "backfill",
        "frames",
        "seam",
        "sessions",
        "param_checks",
        "sinks",
        "snapshots",
        "universe",
    },
    {"history"},
    {"store"},
    {"sources"},
    {"feed", "relay", "exports"},
    {"quality", "sim", "demo", "plot"},
    {"cli", "__init__", "__main__"},
]
LAYER_OF = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(modules: dict[str, Path], *, top_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(node) for block in ast.walk(tree) if _is_type_checking_block(block) for node in ast.walk(block)
        }  # never run, so no layering to keep
        nodes = [
            node for node in (tree.body if top_level_only else ast.walk(tree)) if id(node) not in typing_only
        ]
        for node in nodes:
            if isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    base = name.split(".")
                    if path.name != "__init__.py":
                        base = base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:  # a submodule, not the package around it
                        graph[name].add(f"{target}.{alias.name}")
                    elif target in modules:
                        graph[name].add(target)
        graph[name].discard(name)
    return graph


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    assert {_group(name) for name in _modules()} - set(LAYER_OF) == set()


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _imports(_modules(), top_level_only=False).items()
        for target in targets
        if LAYER_OF[_group(target)] > LAYER_OF[_group(module)]
    )
    assert upward == []


def test_the_module_level_imports_have_no_cycle():
    graph = _imports(_modules(), top_level_only=True)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            cycle = visit(target, path + [module])
            if cycle:
                return cycle
        done.add(module)
        return None

    cycles = [cycle for module in sorted(_modules()) if (cycle := visit(module, []))]
    assert cycles == []
