from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    name = "apps.integrations"
    label = "integrations"
    verbose_name = _("Integrations")

    def ready(self) -> None:
        from apps.integrations import signals  # noqa: F401  (connects the receivers)
