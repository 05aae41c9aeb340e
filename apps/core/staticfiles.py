"""Static files storage for production: hashed names, JavaScript module imports included."""

from __future__ import annotations

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage


class ModuleManifestStaticFilesStorage(ManifestStaticFilesStorage):
    """``ManifestStaticFilesStorage`` that also rewrites ``import ... from "./x.js"`` in the
    JavaScript modules (the workspace, the live socket, media) to the hashed names. Without it
    the hashed ``main.<hash>.js`` would import ``./core.js`` by its plain name, and a browser
    could mix an old module with a new one after a deploy."""

    support_js_module_import_aggregation = True
