"""Benchmark of the agent workspace against PostgreSQL.

It creates (drops first) its own database ``bench_workspace`` on the server of DATABASE_URL,
migrates it and builds one large organisation (``--conversations`` conversations with
``--messages`` messages in all, inserted with ``generate_series``; defaults 10,000 and
1,000,000) plus a small one (50 conversations, 20 messages each) to show that query counts do
not grow with the data. Then:

1. Server time of every request the page makes (in process, Django's test client, no network):
   the page itself, the list of each view, three searches (a rare term, one in every message,
   a two-character one), the view counts, a thread's first page and an older page (cursor), the
   notes, the customer pane; p50/p95 over ``--repeat`` requests, with the
   number of SQL queries per request for the large and the small organisation — next to a
   baseline measured in the same run: the plain conversation list API
   (``GET /api/v1/conversations/``, no view, no filter).
2. In headless Chromium (Debian's ``/usr/bin/chromium``) against a live Daphne and a Celery
   worker (GeWe simulator in process): the time from the webhook POST to the customer's bubble
   in an open workspace page, p50/p95 over ``--bubbles`` messages; next to it the time to the
   message row in the database (polled), which the bubble cannot beat.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/workspace/run.py [--conversations 10000 --messages 1000000
        --repeat 30 --bubbles 100] [--reuse-data: measure again on the last run's data]

Goals (issue 16): p95 server time <= 150 ms; webhook to bubble p95 <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import core_loop_common as common  # noqa: E402

BENCH_DB = "bench_workspace"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- data ----------------------------------------------------------------------------------


def build_org(name: str, conversations: int, messages: int):
    """An organisation with one account, ``conversations`` contacts and conversations, and
    ``messages`` messages spread over them (a few waiting, resolved, assigned, labelled)."""
    from django.db import connection
    from django.utils import timezone

    from apps.conversations.models import Conversation, Label, Message
    from apps.integrations.models import PlatformConnection
    from apps.orgs.models import Membership, Organization, Role
    from apps.wechat_accounts.models import Contact, WeChatAccount
    from tests.accounts.factories import UserFactory

    org = Organization.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    manager = UserFactory(email=f"manager@{org.slug}.example", name="经理", default_org=org)
    Membership.objects.create(org=org, user=manager, role=Role.MANAGER)
    agent = UserFactory(email=f"agent@{org.slug}.example", name="小李", default_org=org)
    Membership.objects.create(org=org, user=agent, role=Role.AGENT)
    conn = PlatformConnection.objects.create(
        org=org, provider="gewe", name="GeWe", base_url="http://127.0.0.1:9/", token="x"
    )
    account = WeChatAccount.objects.create(
        org=org, connection=conn, name="销售小王", wxid=f"wx_{org.slug}", status="online"
    )
    contacts = Contact.objects.bulk_create(
        [
            Contact(org=org, account=account, wxid=f"wxid_{org.slug}_{i}", nickname=f"客户{i}")
            for i in range(conversations)
        ],
        batch_size=5000,
    )
    now = timezone.now()
    rows = []
    for i, contact in enumerate(contacts):
        waiting = i % 50 == 0
        rows.append(
            Conversation(
                org=org,
                account=account,
                contact=contact,
                mode="human" if waiting else "ai",
                status="pending" if waiting else ("resolved" if i % 7 == 0 else "open"),
                handoff_reason="keyword" if waiting else "",
                handed_off_at=now if waiting else None,
                assignee=agent if i % 10 == 0 else None,
                unread_count=i % 3,
                last_message_at=now - timezone.timedelta(seconds=i),
            )
        )
    created = Conversation.objects.bulk_create(rows, batch_size=5000)
    label = Label.objects.create(org=org, name="VIP")
    label.conversations.add(*created[::20])
    first, last = created[0].id, created[-1].id
    per = max(1, messages // max(1, conversations))
    total = per * conversations
    # Messages in bulk with generate_series: conversation = first + (n mod count), alternating
    # customer / AI. Every other column gets its model default (fields added later keep working).
    n_expr = {
        "org_id": str(org.id),
        "conversation_id": f"{first} + (n %% {last - first + 1})",
        "account_id": str(account.id),
        "direction": "CASE WHEN n %% 2 = 0 THEN 'inbound' ELSE 'outbound' END",
        "sender_kind": "CASE WHEN n %% 2 = 0 THEN 'customer' ELSE 'ai' END",
        "kind": "'text'",
        "text": "'第 ' || n || ' 条消息：请问这个产品多少钱，有没有优惠？'",
        "status": "CASE WHEN n %% 2 = 0 THEN 'received' ELSE 'sent' END",
        "created_at": f"now() - (({total} - n) || ' seconds')::interval",
        "updated_at": f"now() - (({total} - n) || ' seconds')::interval",
    }
    template = Message(org=org)
    columns, selects, params = [], [], []
    for field in Message._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(f'"{field.column}"')
        if field.column in n_expr:
            selects.append(n_expr[field.column])
        else:
            selects.append("%s")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    sql = (
        f"INSERT INTO {Message._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(selects)} FROM generate_series(1, {total}) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute("ANALYZE conversations_message")
        cursor.execute("ANALYZE conversations_conversation")
    return org, manager, agent, created


def existing_org(slug: str):
    from apps.accounts.models import User
    from apps.conversations.models import Conversation
    from apps.orgs.models import Organization

    org = Organization.objects.get(slug=slug)
    manager = User.objects.get(email=f"manager@{slug}.example")
    agent = User.objects.get(email=f"agent@{slug}.example")
    return org, manager, agent, list(Conversation.objects.filter(org=org).order_by("id"))


# -- server time ---------------------------------------------------------------------------


def measure(client, path: str, repeat: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    for i in range(repeat + 2):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(path, HTTP_X_ORGANIZATION=str(client.org_id))
            elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        if i >= 2:  # the first two warm caches
            times.append(elapsed)
            queries = len(captured)
    return times, queries


def server_times(big, small, repeat: int) -> dict:
    from django.test import Client

    def client_for(user, org):
        client = Client()
        client.force_login(user)
        client.org_id = org.id
        return client

    org, manager, agent, conversations = big
    s_org, s_manager, _s_agent, s_conversations = small
    target = conversations[1]
    s_target = s_conversations[1]

    def requests(conv_id):
        return [
            ("baseline: conversation list API", "/api/v1/conversations/"),
            ("page /workspace/", "/workspace/"),
            ("page /workspace/c/<id>/", f"/workspace/c/{conv_id}/"),
            ("list view=all", "/api/v1/conversations/?view=all&page_size=50"),
            ("list view=mine", "/api/v1/conversations/?view=mine&page_size=50"),
            ("list view=waiting", "/api/v1/conversations/?view=waiting&page_size=50"),
            ("list view=unassigned", "/api/v1/conversations/?view=unassigned&page_size=50"),
            ("list view=all&label=VIP", "/api/v1/conversations/?view=all&label=VIP&page_size=50"),
            ("counts", "/api/v1/conversations/counts/"),
            ("thread first page", f"/api/v1/conversations/{conv_id}/messages/?page_size=50"),
            ("notes", f"/api/v1/conversations/{conv_id}/notes/"),
            ("customer pane", f"/api/v1/conversations/{conv_id}/customer/"),
            ("conversation detail", f"/api/v1/conversations/{conv_id}/"),
        ]

    big_client = client_for(manager, org)
    small_client = client_for(s_manager, s_org)
    # An older page of the thread: follow the cursor of the first page.
    first = big_client.get(
        f"/api/v1/conversations/{target.id}/messages/?page_size=50",
        HTTP_X_ORGANIZATION=str(org.id),
    ).json()
    s_first = small_client.get(
        f"/api/v1/conversations/{s_target.id}/messages/?page_size=10",
        HTTP_X_ORGANIZATION=str(s_org.id),
    ).json()
    rows = []
    for (label, path), (_l, s_path) in zip(requests(target.id), requests(s_target.id), strict=True):
        times, queries = measure(big_client, path, repeat)
        _s_times, s_queries = measure(small_client, s_path, 3)
        rows.append((label, times, queries, s_queries))
    if first.get("next") and s_first.get("next"):
        times, queries = measure(big_client, first["next"], repeat)
        _t, s_queries = measure(small_client, s_first["next"], 3)
        rows.append(("thread older page (cursor)", times, queries, s_queries))
    # A rare term (a contact's name, in no message), a frequent one (in every message), and a
    # two-character term found nowhere (no trigram: the organisation's messages are scanned).
    searches = [
        ("list search q=客户123 (name + full text)", "客户123"),
        ("list search q=多少钱 (in every message)", "多少钱"),
        ("list search q=折扣 (2 characters, no match)", "折扣"),
    ]
    for label, term in searches:
        search = f"/api/v1/conversations/?view=all&q={quote(term)}&page_size=50"
        times, queries = measure(big_client, search, max(5, repeat // 3))
        rows.append((label, times, queries, None))

    print(f"\n1. Server time per request (ms), {repeat} requests each, as a manager")
    print(f"{'request':<44}{'p50':>8}{'p95':>8}{'queries':>9}{'(small org)':>13}")
    for label, times, queries, s_queries in rows:
        print(
            f"{label:<44}{statistics.median(times):>8.1f}{pct(times, 95):>8.1f}"
            f"{queries:>9}{'' if s_queries is None else s_queries:>13}"
        )
    return {
        label: {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(pct(times, 95), 1),
            "queries": queries,
            "queries_small_org": s_queries,
        }
        for label, times, queries, s_queries in rows
    }


# -- webhook to bubble ---------------------------------------------------------------------


def webhook_to_bubble(env: dict, count: int) -> dict:
    import requests
    from django.test import Client

    from apps.conversations.models import Conversation, Message
    from apps.integrations import simulation
    from apps.integrations.models import PlatformConnection
    from apps.orgs.models import Membership, Organization, Role
    from apps.wechat_accounts import services as wechat
    from apps.wechat_accounts.models import Contact
    from tests.accounts.factories import UserFactory

    sim = simulation.start(host="127.0.0.1")
    daphne, port = common.start_daphne({**env, "SERVE_STATIC": "1"})
    worker = common.start_worker(env, "bench-ws")
    base = f"http://127.0.0.1:{port}"
    try:
        tag = uuid.uuid4().hex[:6]
        org = Organization.objects.create(name="Bubble", slug=f"bubble-{tag}")
        agent = UserFactory(email=f"agent-{tag}@bubble.example", name="小李", default_org=org)
        Membership.objects.create(org=org, user=agent, role=Role.AGENT)
        conn = PlatformConnection.objects.create(
            org=org,
            provider="gewe",
            name="GeWe sim",
            base_url=sim.urls["gewe"],
            token=simulation.DEMO_GEWE_TOKEN,
        )
        account = wechat.account_create(
            org=org, connection=conn, name="销售小王", delay_min_seconds=0, delay_max_seconds=0
        )
        wechat.account_login_start(org=org, account_id=account.pk)
        account.refresh_from_db()
        sim["gewe"].confirm_login(account.device_id)
        wechat.account_login_status(org=org, account_id=account.pk)
        account.refresh_from_db()
        contact = Contact.objects.create(
            org=org, account=account, wxid=f"wxid_bubble_{tag}", nickname="王女士"
        )
        # A person has the chat: the bench measures delivery to the page, not the AI.
        conversation = Conversation.objects.create(
            org=org, account=account, contact=contact, mode="human"
        )
        client = Client()
        client.force_login(agent)
        cookie = {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}
        time.sleep(2.5)  # the worker connects to the broker

        from playwright.sync_api import sync_playwright

        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        bubble_ms, row_ms = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
            )
            context = browser.new_context(bypass_csp=True)  # wait_for_function evaluates JS
            context.add_cookies([cookie])
            page = context.new_page()
            page.goto(f"{base}/workspace/c/{conversation.id}/")
            page.wait_for_function("window.workspace && window.workspace.live.state === 'online'")
            page.wait_for_timeout(500)
            session = requests.Session()
            for i in range(count):
                text = f"气泡测试 {i}"
                payload = sim["gewe"].build_text(
                    from_wxid=f"wxid_bubble_{tag}", text=text, to_account=account.device_id
                )
                start = time.perf_counter()
                assert session.post(base + conn.webhook_path, json=payload, timeout=10).ok
                row_seen = None
                deadline = start + 10
                while row_seen is None and time.perf_counter() < deadline:
                    if Message.objects.filter(conversation=conversation, text=text).exists():
                        row_seen = time.perf_counter()
                    else:
                        time.sleep(0.005)
                page.wait_for_function(
                    "t => [...document.querySelectorAll('#ws-bubbles .ws-text')]"
                    ".some(n => n.textContent === t)",
                    arg=text,
                    timeout=10000,
                    polling=5,
                )
                bubble_ms.append((time.perf_counter() - start) * 1000)
                if row_seen is not None:
                    row_ms.append((row_seen - start) * 1000)
            browser.close()
        print(f"\n2. Webhook POST to the customer's bubble in Chromium ({count} messages, ms)")
        print(f"{'measure':<44}{'p50':>8}{'p95':>8}{'max':>8}")
        print(
            f"{'baseline: POST to the message row in the DB':<44}"
            f"{statistics.median(row_ms):>8.1f}{pct(row_ms, 95):>8.1f}{max(row_ms):>8.1f}"
        )
        print(
            f"{'POST to the bubble on the page':<44}"
            f"{statistics.median(bubble_ms):>8.1f}{pct(bubble_ms, 95):>8.1f}{max(bubble_ms):>8.1f}"
        )
        return {
            "row_p50_ms": round(statistics.median(row_ms), 1),
            "row_p95_ms": round(pct(row_ms, 95), 1),
            "bubble_p50_ms": round(statistics.median(bubble_ms), 1),
            "bubble_p95_ms": round(pct(bubble_ms, 95), 1),
            "bubble_max_ms": round(max(bubble_ms), 1),
        }
    finally:
        common.stop(worker, daphne)
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--bubbles", type=int, default=100)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument(
        "--reuse-data", action="store_true", help="measure on the data of the previous run"
    )
    args = parser.parse_args()

    url = common.bench_database_url(BENCH_DB)
    if not args.reuse_data:
        common.recreate_database(url)
    env = common.env_for(
        url,
        CACHE_KEY_PREFIX="bench-ws",
        CHANNELS_PREFIX="bench-ws",
        WECHAT_SEND_DELAY_SCALE="0",
        CONVERSATION_MERGE_WINDOW_SECONDS="0",
        LANGUAGE_CODE="zh-hans",
    )
    common.migrate(env)
    common.setup_django(env)

    start = time.perf_counter()
    if args.reuse_data:
        big, small = existing_org("big-sales"), existing_org("small-sales")
        args.conversations = len(big[3])
    else:
        big = build_org("Big Sales", args.conversations, args.messages)
        small = build_org("Small Sales", 50, 1000)
    from apps.conversations.models import Message

    total = Message.objects.filter(org=big[0]).count()
    print(
        f"Data: {args.conversations:,} conversations and {total:,} messages in one organisation "
        f"(built in {time.perf_counter() - start:.0f} s); small organisation: 50 conversations, "
        "1,000 messages"
    )
    requests = server_times(big, small, args.repeat)
    bubble = None if args.skip_browser else webhook_to_bubble(env, args.bubbles)
    summary = {
        "bench": "workspace",
        "conversations": args.conversations,
        "messages": total,
        "requests": requests,
        "webhook_to_bubble": bubble,
        "worst_p95_ms": max(r["p95_ms"] for r in requests.values()),
        "cores": os.cpu_count(),
    }
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
