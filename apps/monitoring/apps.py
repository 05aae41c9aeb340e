from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self) -> None:
        from apps.monitoring import receivers

        receivers.connect()

        # Alerts from domain events; worker and beat health on /readyz/deep (never /readyz).
        from apps.core.health import DEEP_READINESS_CHECKS
        from apps.monitoring import alerting, checks

        alerting.connect_receivers()
        DEEP_READINESS_CHECKS["celery_workers"] = checks.readiness_celery
        DEEP_READINESS_CHECKS["celery_beat"] = checks.readiness_beat
