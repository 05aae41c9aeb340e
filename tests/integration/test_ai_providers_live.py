"""FastGPT and Dify in the live reply loop: webhooks POSTed to Daphne, a real Celery worker,
PostgreSQL, the platform and AI simulators over HTTP. For both platforms (GeWe, E云管家) every
combination of provider (FastGPT, Dify), mode (blocking, streaming) and chat (private, group)
is answered once; the group answer @-mentions the asker by name (seed 004's E云 80001 group ->
Dify streaming -> group reply flow among them), and FastGPT/Dify keep one session per member.
"""

from __future__ import annotations

import itertools
import uuid

import pytest

from apps.conversations.models import AISession, AITurn
from apps.integrations.models import AIApp
from apps.wechat_accounts.models import AccountAIApp
from tests.conftest import requires_postgres
from tests.conversations.helpers import ecloud_connection, gewe_connection, gewe_login
from tests.fixtures_simulators import SIM_DIFY_KEY, SIM_FASTGPT_KEY
from tests.integration.test_core_loop_live import (  # noqa: F401 - fixtures
    daphne,
    not_eager,
    post,
    wait_until,
    workers,
)
from tests.media.helpers import ecloud_login
from tests.orgs.factories import OrganizationFactory

pytestmark = [requires_postgres, pytest.mark.integration]

MENTION_END = "\u2005"


def _apps(org, sims) -> dict[tuple[str, bool], AIApp]:
    apps = {}
    for provider, streaming in itertools.product(("fastgpt", "dify"), (False, True)):
        apps[(provider, streaming)] = AIApp.objects.create(
            org=org,
            provider=provider,
            name=f"{provider} {'stream' if streaming else 'block'}",
            base_url=sims.urls[provider],
            api_key=SIM_FASTGPT_KEY if provider == "fastgpt" else SIM_DIFY_KEY,
            streaming=streaming,
        )
    return apps


def _use(account, app) -> None:
    AccountAIApp.objects.filter(account=account).delete()
    AccountAIApp.objects.create(org=account.org, account=account, ai_app=app, position=0)


def _stream_flags(sims, provider: str) -> list[bool]:
    if provider == "fastgpt":
        return [
            bool(r.json.get("stream")) for r in sims["fastgpt"].requests_to("/v1/chat/completions")
        ]
    return [
        r.json.get("response_mode") == "streaming"
        for r in sims["dify"].requests_to("/chat-messages")
    ]


@pytest.fixture
def live_org(transactional_db, simulators_clean, settings):
    settings.WECHAT_SEND_DELAY_SCALE = 0
    return OrganizationFactory(name="Live AI", slug=f"live-ai-{uuid.uuid4().hex[:6]}")


@pytest.mark.parametrize("platform", ["gewe", "ecloud"])
def test_fastgpt_and_dify_blocking_and_streaming_private_and_group(
    platform,
    daphne,  # noqa: F811 - the fixture imported above
    workers,  # noqa: F811
    live_org,
    simulators_clean,
    not_eager,  # noqa: F811
):
    sims = simulators_clean
    sim = sims[platform]
    sim.generate_contacts(friends=4, groups=1, members=3)
    if platform == "gewe":
        conn = gewe_connection(live_org, sims)
        account = gewe_login(live_org, conn, sim)
        room, members = "34000000000@chatroom", ["wxid_cust0000", "wxid_cust0001"]
        names = ["客户0000", "客户0001"]
    else:
        conn = ecloud_connection(live_org, sims)
        account = ecloud_login(live_org, conn, sim)
        room, members = "45000000000@chatroom", ["wxid_ecust0000", "wxid_ecust0001"]
        names = ["E客户0000", "E客户0001"]
    account.group_reply_policy = "all"  # seed 004: answer every group message
    account.save(update_fields=["group_reply_policy"])
    apps = _apps(live_org, sims)
    workers(1)

    def build(kind: str, sender: str, text: str) -> dict:
        if platform == "gewe":
            if kind == "group":
                return sim.build_group_text(
                    chatroom_id=room, sender_wxid=sender, text=text, to_account=account.device_id
                )
            return sim.build_text(from_wxid=sender, text=text, to_account=account.device_id)
        return sim.build_message(
            message_type="80001" if kind == "group" else "60001",
            from_wxid=sender,
            content=text,
            group=room if kind == "group" else None,
            to_account=account.device_id,
        )

    def content_of(record) -> str:
        return record["body"].get("content") or ""

    for index, ((provider, streaming), kind) in enumerate(
        itertools.product(apps, ("private", "group"))
    ):
        app = apps[(provider, streaming)]
        _use(account, app)
        text = f"问题{index:02d}"
        sender = members[(index // 2) % 2] if kind == "group" else f"wxid_live_{platform}_{index}"
        assert post(daphne, conn, build(kind, sender, text)) == 200
        reply = wait_until(
            lambda t=text: next((s for s in sim.sent if t in content_of(s)), None), timeout=40
        )
        turn = AITurn.objects.get(last_message__text=text)
        assert turn.status == AITurn.Status.ANSWERED and turn.ai_app_id == app.pk, (
            provider,
            streaming,
            kind,
        )
        assert _stream_flags(sims, provider)[-1] is streaming
        if kind == "group":
            name = names[(index // 2) % 2]
            assert content_of(reply).startswith(f"@{name}{MENTION_END}"), content_of(reply)
            at = reply["body"].get("ats") or reply["body"].get("at")
            assert at == sender
        else:
            assert not content_of(reply).startswith("@")
    # Every message answered exactly once.
    answered = [s for s in sim.sent if "问题" in content_of(s)]
    assert len(answered) == 8
    # Provider sessions are kept per member of the group (and per private customer).
    group_sessions = AISession.objects.filter(conversation__contact__wxid=room)
    assert {s.member_wxid for s in group_sessions} == set(members)
