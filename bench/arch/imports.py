"""Import-shape census of apps/: cycles, function-level cross-app imports, long modules.

Prints the numbers issue 14 asks for, so a before/after can be compared in one run:

    .venv/bin/python bench/arch/imports.py [--verbose]

- module cycles: strongly connected components (size > 1) of the module-level import graph
  between modules of apps/ (edges from every `import`/`from ... import`, module level or not,
  counted separately); reported as app-level cycles (between apps) and within-app cycles.
- cross-app function-level imports: imports inside a function or method body that name a
  different app than the importing module's own.
- modules over 800 lines, and JavaScript files under static/app/ over 800 lines (the same rule:
  split a page's script into ES modules, as static/app/workspace/ is).

`--check` prints only the files over the limit and exits 1 when there is one; `make lint` and
tests/core/test_module_size.py run it, so CI enforces the rule.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"
STATIC_APP = ROOT / "static" / "app"
LIMIT = 800


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else None


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def collect():
    modules = {}
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        modules[module_name(path)] = path
    edges_top: dict[str, set[str]] = defaultdict(set)
    edges_all: dict[str, set[str]] = defaultdict(set)
    function_level: list[tuple[str, int, str]] = []
    long_modules = []
    for name, path in modules.items():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > LIMIT:
            long_modules.append((lines, name))
        tree = ast.parse(source)
        is_package = path.name == "__init__.py"

        def visit(
            node, in_function: bool, in_type_checking: bool, name=name, is_package=is_package
        ):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                tc = in_type_checking or (
                    isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
                )
                targets = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = resolve(name, is_package, child)
                    targets = []
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        targets.append(full if full in modules else base)
                for target in targets:
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    if not target or not target.startswith("apps."):
                        continue
                    if tc:
                        continue
                    edges_all[name].add(target)
                    if not inside:
                        edges_top[name].add(target)
                    elif app_of(target) != app_of(name) and app_of(target):
                        entry = (name, child.lineno, app_of(target))
                        if entry not in function_level:
                            function_level.append(entry)
                visit(child, inside, tc)

        visit(tree, False, False)
    return modules, edges_top, edges_all, function_level, sorted(long_modules, reverse=True)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def long_python_modules(apps_dir: Path = APPS) -> list[tuple[int, str]]:
    """Python modules under apps/ (migrations aside) over LIMIT lines, longest first."""
    found = [
        (line_count(path), str(path.relative_to(apps_dir.parent)))
        for path in apps_dir.rglob("*.py")
        if "migrations" not in path.parts
    ]
    return sorted((item for item in found if item[0] > LIMIT), reverse=True)


def long_js_files(static_dir: Path = STATIC_APP) -> list[tuple[int, str]]:
    """JavaScript files under static/app/ (subfolders included) over LIMIT lines, longest first."""
    found = [
        (line_count(path), str(path.relative_to(static_dir.parents[1])))
        for path in static_dir.rglob("*.js")
    ]
    return sorted((item for item in found if item[0] > LIMIT), reverse=True)


def check(apps_dir: Path = APPS, static_dir: Path = STATIC_APP) -> int:
    """The rule "no module over 800 lines" for Python and JavaScript: 1 when it is broken."""
    over = long_python_modules(apps_dir) + long_js_files(static_dir)
    for lines, name in over:
        print(f"{name}: {lines} lines (limit {LIMIT}; split it into smaller modules)")
    return 1 if over else 0


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strong(v)
    return out


def app_edges(edges):
    result: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            a, b = app_of(source), app_of(target)
            if a and b and a != b:
                result[a].add(b)
    return result


# The layers of DESIGN.md, lowest first (pyproject.toml's contracts name the same order).
LAYERS = [
    {"core", "orgs", "accounts"},
    {"media"},
    {"integrations"},
    {"billing"},
    {"wechat_accounts"},
    {"conversations"},
    {"sop", "monitoring"},
    {"reports", "console"},
]


def layer_of(app: str | None) -> int:
    return next((i for i, apps in enumerate(LAYERS) if app in apps), len(LAYERS))


def main(verbose: bool) -> None:
    modules, edges_top, edges_all, function_level, long_modules = collect()
    module_cycles_top = sccs(modules, edges_top)
    module_cycles_all = sccs(modules, edges_all)
    app_graph_all = app_edges(edges_all)
    app_cycles_all = sccs(sorted(app_graph_all), app_graph_all)
    within_all = [c for c in module_cycles_all if len({app_of(m) for m in c}) == 1]
    between_all = [c for c in module_cycles_all if len({app_of(m) for m in c}) > 1]
    print(f"modules: {len(modules)}")
    print(f"module-level import cycles (top-level imports only): {len(module_cycles_top)}")
    print(
        f"module import cycles counting function-level imports: {len(module_cycles_all)} "
        f"({len(between_all)} spanning apps, {len(within_all)} within one app)"
    )
    print(f"app-level cycle groups (any import): {len(app_cycles_all)}")
    for comp in app_cycles_all:
        print("   apps:", " <-> ".join(comp))
    for comp in module_cycles_all:
        shown = ", ".join(comp) if verbose or len(comp) < 8 else f"{len(comp)} modules"
        print("   modules:", shown)
    upward = [e for e in function_level if layer_of(e[2]) > layer_of(app_of(e[0]))]
    print(
        f"cross-app function-level imports (statement x target app): {len(function_level)}, "
        f"of which {len(upward)} import a higher layer (dodges of a cycle)"
    )
    for name, line, target in function_level if verbose else upward:
        print(f"   {name}:{line} -> apps.{target}")
    violations = sorted(
        {
            (source, target)
            for source, targets in edges_all.items()
            for target in targets
            if app_of(source) != app_of(target)
            and layer_of(app_of(target)) > layer_of(app_of(source))
        }
    )
    print(f"module imports of a higher layer (any level): {len(violations)}")
    for source, target in violations:
        print(f"   {source} -> {target}")
    print(f"modules over {LIMIT} lines: {len(long_modules)}")
    for lines, name in long_modules:
        print(f"   {lines} {name}")
    long_js = long_js_files()
    print(f"JavaScript files under static/app/ over {LIMIT} lines: {len(long_js)}")
    for lines, name in long_js:
        print(f"   {lines} {name}")
    summary = {
        "bench": "arch",
        "modules": len(modules),
        "module_cycles_top_level": len(module_cycles_top),
        "module_cycles_any_level": len(module_cycles_all),
        "app_cycle_groups": len(app_cycles_all),
        "function_level_cross_app_imports": len(function_level),
        "upward_function_level_imports": len(upward),
        "higher_layer_imports": len(violations),
        "modules_over_limit": len(long_modules),
        "js_files_over_limit": len(long_js),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(check())
    main("--verbose" in sys.argv)
