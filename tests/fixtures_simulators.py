"""Running provider simulators for any test in the repository (registered in tests/conftest.py).

    def test_something(simulators, org):
        url = simulators.urls["gewe"]              # client base URL (free port)
        simulators["openai"].add_fault("error", status=500, times=1)

``simulators`` is session-scoped (started once, on free ports); ``simulators_clean`` resets
their state, recorded requests and faults first. Credentials: ``SIM_GEWE_TOKEN`` and
``SIM_OPENAI_KEY``, ``SIM_ECLOUD_AUTHORIZATION``, ``SIM_FASTGPT_KEY``,
``SIM_DIFY_KEY``, ``SIM_DASHSCOPE_KEY`` (the same as ``manage.py simulate`` and the demo rows use).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.integrations import simulation

SIM_GEWE_TOKEN = simulation.DEMO_GEWE_TOKEN
SIM_OPENAI_KEY = simulation.DEMO_OPENAI_KEY
SIM_ECLOUD_AUTHORIZATION = simulation.DEMO_ECLOUD_AUTHORIZATION
SIM_FASTGPT_KEY = simulation.DEMO_FASTGPT_KEY
SIM_DIFY_KEY = simulation.DEMO_DIFY_KEY
SIM_DASHSCOPE_KEY = simulation.DEMO_DASHSCOPE_KEY


@pytest.fixture(scope="session")
def simulators() -> Iterator:
    handle = simulation.start(host="127.0.0.1")
    yield handle
    handle.stop()


@pytest.fixture
def simulators_clean(simulators):
    simulators.reset()
    yield simulators
    simulators.reset()
