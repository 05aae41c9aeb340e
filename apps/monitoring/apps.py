from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self) -> None:
        from apps.monitoring import receivers

        receivers.connect()

        # Health checks and alerts (monitoring work): alerts from domain events, /readyz.
        from apps.core.health import READINESS_CHECKS
        from apps.monitoring import alerting, checks

        alerting.connect_receivers()
        READINESS_CHECKS["celery_workers"] = checks.readiness_celery
        READINESS_CHECKS["celery_beat"] = checks.readiness_beat
