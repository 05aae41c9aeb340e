"""The rule "no module over 800 lines" holds for the Python modules of apps/ and the JavaScript
files of static/app/. ``make lint`` runs ``bench/arch/imports.py --check``; this test makes
``make test`` (what CI runs) enforce it too, the same way as the import contracts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "arch" / "imports.py"


def _census():
    spec = importlib.util.spec_from_file_location("bench_arch_imports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_python_module_or_javascript_file_is_over_the_limit():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_on_a_javascript_file_over_the_limit_in_a_subfolder(tmp_path):
    census = _census()
    apps = tmp_path / "apps"
    (apps / "shop").mkdir(parents=True)
    (apps / "shop" / "services.py").write_text("x = 1\n" * census.LIMIT)
    static_app = tmp_path / "static" / "app"
    (static_app / "page").mkdir(parents=True)
    (static_app / "small.js").write_text("let a;\n" * census.LIMIT)
    assert census.check(apps, static_app) == 0

    (static_app / "page" / "big.js").write_text("let a;\n" * (census.LIMIT + 1))
    assert census.long_js_files(static_app) == [(census.LIMIT + 1, "static/app/page/big.js")]
    assert census.check(apps, static_app) == 1


def test_the_check_fails_on_a_python_module_over_the_limit_but_not_a_migration(tmp_path):
    census = _census()
    apps = tmp_path / "apps"
    (apps / "shop" / "migrations").mkdir(parents=True)
    (apps / "shop" / "migrations" / "0001_initial.py").write_text("x = 1\n" * 2000)
    static_app = tmp_path / "static" / "app"
    static_app.mkdir(parents=True)
    assert census.check(apps, static_app) == 0

    (apps / "shop" / "services.py").write_text("x = 1\n" * (census.LIMIT + 1))
    assert census.long_python_modules(apps) == [(census.LIMIT + 1, "apps/shop/services.py")]
    assert census.check(apps, static_app) == 1
