"""The console in Simplified Chinese: no raw codes or English fragments on the pages a member
opens, notifications as sentences with names and working links, money as ¥."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import translation

from apps.core.money import format_money
from apps.monitoring import receivers
from apps.monitoring.models import Notification
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.console.test_roles import login, menu_of, populated  # noqa: F401 (fixture)
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db

# Raw codes and English that once showed on Chinese pages (issue 15), and a few more like them.
FORBIDDEN = [
    "pending_login",
    "risk_controlled",
    "logged_out",
    "handed_off",
    "ai_failed",
    "phone_reply",
    "account_status",
    "DISPLAY NAME",
    "Display name",
    "Choose all",
    "(inbound)",
    "(outbound)",
    "账号 ID",
    "message 1",
    "Search apps and models",
    "Type to search",
    "Workbench",
    "Customers",
    "What needs attention now",
    "Filters",
    "Welcome back to",
]
CODE_WORDS = re.compile(r"\b(keyword|handoff|healthy|degraded|online|offline)\b")


class _Text(HTMLParser):
    """The text a person reads: no tags, attributes, scripts or styles."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def test_money_is_shown_in_yuan():
    assert format_money(Decimal("0.0195520000000000")) == "¥0.02"
    assert format_money(Decimal("0.0195520000000000"), "CNY", 4) == "¥0.0196"
    assert format_money(Decimal("1234.5")) == "¥1,234.50"
    assert format_money(None) == "—"


@pytest.mark.parametrize("role", [Role.OWNER, Role.AGENT])
def test_no_raw_codes_or_english_on_the_chinese_pages(client, org, populated, role):  # noqa: F811
    login(client, role, org)
    client.cookies["django_language"] = "zh-hans"
    headers = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    home = client.get(reverse("admin:index"), **headers)
    assert "工作台" in visible_text(home.content.decode())  # the page is the Chinese one
    problems = []
    for items in menu_of(home).values():
        for title, link in items:
            response = client.get(link, **headers)
            if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
                continue
            text = visible_text(response.content.decode())
            for needle in FORBIDDEN:
                if needle in text:
                    problems.append(f"{link}: {needle!r}")
            for match in CODE_WORDS.finditer(text):
                problems.append(f"{link}: {match.group(0)!r}")
    assert problems == []


def test_account_notification_is_a_sentence_with_the_name_and_a_link(client, org, populated):  # noqa: F811
    owner = UserFactory(default_org=org)
    MembershipFactory(org=org, user=owner, role=Role.OWNER)
    account = populated["account"]
    account.name = "销售小王"
    account.save(update_fields=["name"])
    with translation.override("zh-hans"):
        receivers.on_account_status_changed(
            None,
            org_id=org.id,
            account_id=account.id,
            from_status="online",
            to_status="risk_controlled",
        )
    note = Notification.objects.get(org=org, user=owner, category="account_status")
    assert note.title == "微信账号「销售小王」被风控，请尽快处理"
    assert "risk_controlled" not in note.message and "online" not in note.message
    client.force_login(owner)
    assert client.get(note.action_url).status_code == 200


def test_handoff_and_budget_notifications_name_the_customer_and_the_budget(org, populated):  # noqa: F811
    from apps.billing.models import Budget

    owner = UserFactory(default_org=org)
    MembershipFactory(org=org, user=owner, role=Role.OWNER)
    conversation = populated["conversation"]
    budget = Budget.objects.get(org=org)
    with translation.override("zh-hans"):
        receivers.on_conversation_handed_off(
            None, org_id=org.id, conversation_id=conversation.id, reason="keyword"
        )
        receivers.on_budget_threshold_crossed(
            None,
            org_id=org.id,
            budget_id=budget.id,
            threshold=80,
            period="2026-12",
            used=Decimal("8.0123"),
            limit=Decimal("10"),
        )
    handoff = Notification.objects.get(org=org, user=owner, category="handoff")
    assert handoff.title == "客户「Customer Zhang」正在等待人工接待"
    assert "客户要求人工" in handoff.message
    assert handoff.action_url == reverse(
        "admin:conversations_conversation_change", args=[conversation.id]
    )
    budget_note = Notification.objects.get(org=org, user=owner, category="budget")
    assert "Monthly" in budget_note.title and "80%" in budget_note.title
    assert "¥8.01" in budget_note.message and "¥10.00" in budget_note.message


def test_the_api_schema_is_grouped_by_readable_tags_with_summaries(client):
    response = client.get("/api/schema/?format=json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    schema = response.json()
    operations = [
        op
        for ops in schema["paths"].values()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert operations and all(op.get("summary") for op in operations)
    tags = {tag for op in operations for tag in op.get("tags", [])}
    assert "会话列表" in tags and "v1" not in tags
    assert {t["name"] for t in schema["tags"]} == tags


def test_root_and_api_root_and_favicon(client, org):
    response = client.get("/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    api = client.get("/api/v1/")
    endpoints = api.json()["endpoints"]
    assert api.status_code == 200 and endpoints["conversation"].endswith("/api/v1/conversations/")
    assert client.get("/favicon.ico").status_code == 302
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=Role.VIEWER)
    client.force_login(user)
    assert client.get("/")["Location"] == reverse("admin:index")


def test_password_reset_by_email(client, org, mailoutbox):
    user = UserFactory(email="forgot@example.com", default_org=org)
    MembershipFactory(org=org, user=user, role=Role.AGENT)
    login_page = client.get(reverse("admin:login")).content.decode()
    assert reverse("admin_password_reset") in login_page
    response = client.post(reverse("admin_password_reset"), {"email": user.email})
    assert response.status_code == 302
    assert len(mailoutbox) == 1
    link = re.search(r"https?://[^/\s]+(/reset/\S+/)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200
    response = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link,
        {"new_password1": "Brand-new-pass-2026", "new_password2": "Brand-new-pass-2026"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Brand-new-pass-2026")
