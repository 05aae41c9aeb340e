"""The Celery application: JSON only, late acks, time limits, database beat scheduler."""

import os

from celery import Celery

from apps.core.logcontext import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("sales_assistant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every task's log lines carry its task id and the request id of the request that sent it.
connect_celery_signals()
