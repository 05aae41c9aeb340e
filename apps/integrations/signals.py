"""Cache invalidation for AI apps (a decoupled concern, hence a signal)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.integrations.models import AIApp


@receiver(post_save, sender=AIApp, dispatch_uid="integrations_aiapp_saved")
@receiver(post_delete, sender=AIApp, dispatch_uid="integrations_aiapp_deleted")
def ai_app_changed(sender, instance: AIApp, **kwargs) -> None:
    from apps.integrations.selectors import ai_app_cache_invalidate

    org_id, ai_app_id = instance.org_id, instance.pk

    def invalidate() -> None:
        ai_app_cache_invalidate(org_id=org_id, ai_app_id=ai_app_id)

    # Now, so this transaction reads fresh values; and again after commit, because another
    # process may have re-cached the old row in between.
    invalidate()
    transaction.on_commit(invalidate)
