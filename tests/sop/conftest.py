"""Fixtures: an online account at the GeWe simulator, contacts, a plan builder and a tick
helper that runs the pipeline's after-commit work."""

from __future__ import annotations

import pytest

from apps.sop import services
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import Contact
from tests.wechat_accounts.conftest import login, make_connection


@pytest.fixture(autouse=True)
def _pipeline_settings(settings):
    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.WECHAT_SEND_RETRY_BASE_SECONDS = 0
    settings.WECHAT_SEND_WINDOW_SECONDS = 60
    settings.SOP_RETRY_BASE_SECONDS = 60


@pytest.fixture
def gewe(simulators_clean):
    return simulators_clean["gewe"]


def online_account(org, simulators, gewe, name="Sales 1"):
    connection = make_connection(org, simulators, name=f"GeWe {name}")
    account = wechat.account_create(
        org=org, connection=connection, name=name, delay_min_seconds=0, delay_max_seconds=0
    )
    return login(account, gewe)


@pytest.fixture
def account(org, simulators_clean, gewe):
    return online_account(org, simulators_clean, gewe)


def make_contact(account, wxid, **fields) -> Contact:
    fields.setdefault("nickname", wxid.replace("wxid_", "").title())
    fields.setdefault("kind", Contact.Kind.FRIEND)
    return Contact.objects.create(org=account.org, account=account, wxid=wxid, **fields)


@pytest.fixture
def contacts(account):
    return [make_contact(account, f"wxid_c{i}") for i in range(3)]


def make_plan(org, accounts, steps=None, **fields):
    fields.setdefault("name", "Welcome")
    fields.setdefault("trigger", "once")
    steps = steps if steps is not None else [{"kind": "text", "text": "Hi {nickname}"}]
    return services.plan_create(org=org, accounts=list(accounts), steps=steps, **fields)


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """Run one scheduler tick for ``org`` and the pipeline work it queues (eager Celery)."""

    def run(org, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = services.sop_tick(org_id=org.pk, **kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            services.sop_tick(org_id=org.pk)  # mirror sent / failed, end actions
        return result

    return run
