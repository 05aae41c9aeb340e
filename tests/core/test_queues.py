"""Named Celery queues (issue 19): every task has a home, and slow work is kept apart from the
core loop's fast steps."""

from __future__ import annotations

from django.conf import settings

from config.celery import app


def _queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_every_task_goes_to_a_queue_a_worker_consumes():
    app.loader.import_default_modules()
    names = [name for name in app.tasks if not name.startswith("celery.")]
    assert len(names) > 20
    consumed = set(settings.CELERY_QUEUE_NAMES)
    for name in names:
        assert _queue_of(name) in consumed, name


def test_the_core_loop_stages_have_their_own_queues():
    assert _queue_of("apps.integrations.tasks.webhook_event_process") == "webhook"
    assert _queue_of("apps.conversations.tasks.ai_turn_run") == "ai"
    assert _queue_of("apps.wechat_accounts.tasks.outbound_deliver") == "send"
    assert _queue_of("apps.sop.tasks.sop_tick") == "sop"
    assert _queue_of("apps.monitoring.tasks.monitoring_tick") == "monitoring"
    assert _queue_of("apps.reports.tasks.reports_refresh") == "monitoring"


def test_a_worker_without_q_consumes_every_named_queue():
    """``make run`` and the live tests start one worker without -Q: it must see them all."""
    assert {queue.name for queue in app.conf.task_queues} == set(settings.CELERY_QUEUE_NAMES)
    assert app.conf.worker_prefetch_multiplier == 1  # a long AI call holds no short task


def test_docker_compose_runs_a_worker_for_every_queue():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(settings.BASE_DIR) / "docker-compose.yml").read_text())
    consumed = set()
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if name.startswith("worker") and "-Q" in command:
            consumed.update(command[command.index("-Q") + 1].split(","))
    assert consumed == set(settings.CELERY_QUEUE_NAMES)
