"""The workspace's front end is native ES modules (static/app/workspace/, entry main.js) with no
build step, so nothing but a browser would notice a broken import. Without one: every name a
module imports from another is exported there, and the modules import each other one way only
(Django's ManifestStaticFilesStorage cannot hash cyclic imports if asked to rewrite them)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "static" / "app" / "workspace"
IMPORT = re.compile(r'^import \{([^}]*)\} from "(\.\.?/[^"]+)";', re.M)
EXPORT = re.compile(r"^export (?:async function|function|const|let|class) ([\w$]+)", re.M)


def _imports(path: Path) -> list[tuple[Path, list[str]]]:
    found = []
    for names, target in IMPORT.findall(path.read_text(encoding="utf-8")):
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        found.append(((path.parent / target).resolve(), wanted))
    return found


def test_every_imported_name_is_exported_by_its_module():
    modules = sorted(WORKSPACE.glob("*.js"))
    assert WORKSPACE / "main.js" in modules and len(modules) > 5
    for path in modules:
        for target, names in _imports(path):
            assert target.exists(), (path.name, target)
            exported = set(EXPORT.findall(target.read_text(encoding="utf-8")))
            missing = set(names) - exported
            assert not missing, f"{path.name} imports {sorted(missing)} from {target.name}"


def test_the_modules_import_each_other_one_way_only():
    graph = {
        path.name: [target.name for target, _ in _imports(path) if target.parent == WORKSPACE]
        for path in WORKSPACE.glob("*.js")
    }
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import cycle: " + " -> ".join((*trail, name))
        if name in done:
            return
        for target in graph[name]:
            visit(target, (*trail, name))
        done.add(name)

    visit("main.js", ())
    assert done == set(graph), f"not reached from main.js: {sorted(set(graph) - done)}"
