"""Production's static storage hashes JavaScript module imports too (a browser never mixes an
old workspace module with a new one after a deploy)."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from apps.core.staticfiles import ModuleManifestStaticFilesStorage

IMPORT = re.compile(r"""\bimport\s*\{[^}]*\}\s*from\s*["']([^"']+)["']""")


def test_collectstatic_rewrites_module_imports_to_hashed_names(tmp_path, settings):
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "apps.core.staticfiles.ModuleManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=str(tmp_path), STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
        storage = ModuleManifestStaticFilesStorage(location=str(tmp_path))
        main = Path(tmp_path, storage.stored_name("app/workspace/main.js")).read_text()
        core = Path(tmp_path, storage.stored_name("app/workspace/core.js")).read_text()
    targets = IMPORT.findall(main) + IMPORT.findall(core)
    assert targets, "the entry module imports the others"
    # Every import names a hashed file (name.<12 hex>.js), none the plain name.
    assert all(re.search(r"\.[0-9a-f]{12}\.js$", t) for t in targets), targets
    assert any("live." in t for t in IMPORT.findall(core))
