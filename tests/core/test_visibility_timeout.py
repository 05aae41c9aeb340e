"""The broker's visibility timeout (issue 18): a task acknowledged late whose worker died is
redelivered after the longest task's time limit plus a margin, not after an hour; and no
countdown the code sets outlives it (a longer ETA would be delivered twice)."""

from __future__ import annotations

import pytest
from django.conf import settings

from config.celery import app


def _time_limits() -> dict[str, float]:
    app.loader.import_default_modules()
    return {
        name: task.time_limit or settings.CELERY_TASK_TIME_LIMIT
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    }


def test_the_visibility_timeout_is_the_longest_task_plus_a_margin():
    limits = _time_limits()
    longest = max(limits.values())
    # The setting names the longest task: change both together.
    assert settings.CELERY_LONGEST_TASK_TIME_LIMIT == longest, max(limits, key=limits.get)
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout == settings.CELERY_VISIBILITY_TIMEOUT
    assert longest < timeout <= longest + 120
    assert timeout < 3600  # an hour of waiting for a dead worker's task was the defect
    assert app.conf.broker_transport_options["visibility_timeout"] == timeout


def test_every_task_finishes_within_the_visibility_timeout():
    timeout = settings.CELERY_VISIBILITY_TIMEOUT
    for name, limit in _time_limits().items():
        assert limit < timeout, name


@pytest.mark.django_db
def test_outbound_countdowns_are_capped_below_the_visibility_timeout(monkeypatch, settings):
    from apps.conversations import tasks
    from apps.conversations.outbound.queue import enqueue

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(
        tasks.outbound_deliver, "apply_async", lambda **kwargs: sent.append(kwargs["countdown"])
    )
    enqueue(org_id=1, message_id=1, countdown=8 * 3600)  # quiet hours until the morning
    assert sent == [settings.CELERY_MAX_COUNTDOWN_SECONDS]
    assert settings.CELERY_MAX_COUNTDOWN_SECONDS < settings.CELERY_VISIBILITY_TIMEOUT
