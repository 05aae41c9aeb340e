from __future__ import annotations

import pytest
import time_machine

from apps.reports import services, tasks
from tests.reports import history


@pytest.fixture
def refresh(settings):
    """Run the beat task the way production does (after the history, same day)."""
    settings.REPORTS_SOP_LOOKBACK_SECONDS = 86400

    def run(when=None):
        with time_machine.travel(when or history.at(23), tick=False):
            tasks.reports_refresh_all_orgs()

    return run


@pytest.fixture
def built(org, make_member, django_capture_on_commit_callbacks, refresh):
    with django_capture_on_commit_callbacks(execute=True):
        h = history.build(org, make_member)
    refresh()
    return h


@pytest.fixture
def rebuild():
    def run(org):
        with time_machine.travel(history.at(23), tick=False):
            return services.range_rebuild(org=org, start=history.DAY, end=history.DAY)

    return run
