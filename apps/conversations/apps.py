from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from apps.conversations import (
            admin_ai,
            admin_backfill,
            ai_app_cache,
            receivers,
            webhook_handlers,
        )

        receivers.connect()
        ai_app_cache.connect()  # the AI turn's reply app lists (issue 19)
        webhook_handlers.register()
        admin_ai.register()  # drafts and AI sessions (issue 17)
        admin_backfill.register()  # analysis backfills requested in the console
