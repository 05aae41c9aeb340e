"""Installs the console's admin site (``ConsoleAdminSite``) as Django's default admin site."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "apps.core.admin_site.ConsoleAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module is registered now
        restyle_third_party_admins()


def restyle_third_party_admins() -> None:
    """Admins registered by installed packages (Celery beat, the JWT blacklist) get unfold's
    ModelAdmin mixed in, so platform pages look like the rest of the console. Their own
    permissions stay (Django model permissions: superusers in practice)."""
    from django.contrib import admin
    from unfold.admin import ModelAdmin as UnfoldModelAdmin

    for model, model_admin in list(admin.site._registry.items()):
        if isinstance(model_admin, UnfoldModelAdmin):
            continue
        cls = model_admin.__class__
        admin.site.unregister(model)
        admin.site.register(model, type(cls.__name__, (cls, UnfoldModelAdmin), {}))
