from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.billing import config_cache
        from apps.billing.models import Budget, ModelPrice

        # Invalidate the metering config cache when budgets or prices change.
        for name, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(
                config_cache.on_budget_changed, sender=Budget, dispatch_uid=f"billing-cfg-b-{name}"
            )
            signal.connect(
                config_cache.on_price_changed,
                sender=ModelPrice,
                dispatch_uid=f"billing-cfg-p-{name}",
            )
