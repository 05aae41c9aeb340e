from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SopConfig(AppConfig):
    name = "apps.sop"
    label = "sop"
    verbose_name = _("SOP campaigns")

    def ready(self) -> None:
        from apps.sop import (
            receivers,  # noqa: F401 - connects the relative-trigger receivers
            workspace_panel,
        )

        workspace_panel.register()  # the customer pane of the agent workspace
