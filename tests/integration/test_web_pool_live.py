"""The web process's PostgreSQL connections stay bounded under concurrent webhooks, live.

Daphne runs each request in a thread of its own; with persistent connections every request
thread kept one, and 8 clients piled up 64 connections (40 webhooks/s: "too many clients",
webhooks refused). ``config/asgi.py`` switches the connection pool on for the web process
(``DB_POOL``): at most ``DB_POOL_MAX_SIZE`` connections, whatever the concurrency.
"""

from __future__ import annotations

import threading

import pytest
import requests
from django.db import connection

from apps.integrations.models import WebhookEvent
from tests.conftest import requires_postgres
from tests.integration.test_core_loop_live import daphne, loop  # noqa: F401 - fixtures

pytestmark = [requires_postgres, pytest.mark.integration]

CLIENTS = 24
PER_CLIENT = 10
POOL_MAX = 10  # DB_POOL_MAX_SIZE's default (the Daphne fixture is shared, started before us)


def _connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_concurrent_webhooks_share_a_bounded_pool(daphne, loop):  # noqa: F811
    conn, gewe, account = loop["connection"], loop["gewe"], loop["account"]
    codes: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for n in range(PER_CLIENT):
            payload = gewe.build_text(
                from_wxid=f"wxid_pool_{index:02d}", text=f"m{n}", to_account=account.device_id
            )
            status = session.post(daphne + conn.webhook_path, json=payload, timeout=30).status_code
            with lock:
                codes.append(status)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak[0] = max(peak[0], _connections())
        threads[0].join(0.05)
    for thread in threads:
        thread.join()

    assert codes == [200] * (CLIENTS * PER_CLIENT)  # every webhook stored and acknowledged
    assert WebhookEvent.objects.filter(connection=conn).count() == CLIENTS * PER_CLIENT
    # Daphne's pool, plus slack for a connection closing as the next opens: below one per
    # client, let alone the one-per-request-thread pile-up.
    assert peak[0] <= POOL_MAX + 2, peak[0]
