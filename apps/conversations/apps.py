from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from apps.conversations import admin_ai, admin_backfill, receivers, webhook_handlers

        receivers.connect()
        webhook_handlers.register()
        admin_ai.register()  # drafts and AI sessions (issue 17)
        admin_backfill.register()  # analysis backfills requested in the console
