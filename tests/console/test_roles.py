"""The console per role: who signs in, which menu each role gets, that every page of that menu
opens (a crawler: the menu, then the first row of every list), what each role may change, the
organisation switcher, and the platform internals that only superusers see."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.conversations.models import CannedReply, Conversation, Message
from apps.monitoring import alerting
from apps.monitoring.models import Notification
from apps.orgs.models import Role
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.billing.factories import BudgetFactory
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory
from tests.orgs.factories import MembershipFactory
from tests.sop.factories import SopPlanFactory
from tests.wechat_accounts.factories import ContactFactory, TagFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db

ROLES = [Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT, Role.VIEWER]

# The sidebar of each role: group -> items (English source strings; tests run in English).
ORG_MENU = {
    "Workbench": ["Home", "Conversations", "Messages", "Media files", "Notifications"],
    "Customers": ["Contacts", "Tags", "Conversation labels", "Canned replies", "Friend requests"],
    "SOP campaigns": ["SOP plans", "SOP runs", "SOP deliveries", "Moments"],
    "WeChat accounts": ["WeChat accounts", "Status history"],
    "AI and integrations": [
        "AI apps",
        "Platform connections",
        "AI turns",
        "AI drafts",
        "AI sessions",
        "Analysis backfills",
        "Integration calls",
    ],
    "Costs": ["Usage", "Budgets", "Cost ledger", "Budget alerts", "Model prices"],
    "Monitoring and alerts": [
        "Monitoring dashboard",
        "Alerts",
        "Alert rules",
        "Health samples",
        "Notification webhooks",
        "Notification deliveries",
        "Monitoring settings",
    ],
    "Organisation settings": ["Settings", "Organisation", "Members", "Invitations", "Audit log"],
}
PLATFORM_ITEMS = [
    "Users",
    "Permission groups",
    "Webhook events",
    "Budget reservations",
    "Periodic tasks",
    "Crontabs",
    "Intervals",
    "Clocked schedules",
    "Solar schedules",
    "Issued tokens",
    "Blacklisted tokens",
]
# Items that are not pages of the admin's models (present when their app is installed).
OPTIONAL_ITEMS = {"Agent workspace", "Simulate a customer message", "Reports"}


def expected_menu(role: str | None) -> dict[str, list[str]]:
    if role == Role.AGENT:
        return {
            "Workbench": ["Home", "Notifications"],
            "Customers": ["Contacts", "Canned replies"],
            "AI and integrations": ["AI drafts"],  # their own drafts (apps/conversations)
        }
    menu = {group: list(items) for group, items in ORG_MENU.items()}
    if role in (Role.MANAGER, Role.VIEWER):
        menu["Organisation settings"].remove("Audit log")
    if role == Role.VIEWER:
        menu["AI and integrations"].remove("AI sessions")  # managers and up
        menu["AI and integrations"].remove("Analysis backfills")  # managers and up
    if role is None:  # a superuser who is no member: no organisation of their own to set up
        menu["Organisation settings"].remove("Settings")
        menu["Platform"] = list(PLATFORM_ITEMS)
    return menu


@pytest.fixture
def populated(org, other_org):
    """One row of the main kinds in ``org``, and look-alikes in ``other_org``."""
    account = WeChatAccountFactory(org=org, name="Sales Wang")
    contact = ContactFactory(account=account, nickname="Customer Zhang")
    tag = TagFactory(org=org, name="vip")
    contact.tags.add(tag)
    conversation = Conversation.objects.create(
        org=org,
        account=account,
        contact=contact,
        mode=Conversation.Mode.HUMAN,
        status=Conversation.Status.PENDING,
        handoff_reason="keyword",
    )
    Message.objects.create(
        org=org,
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        sender_kind=Message.SenderKind.CUSTOMER,
        text="转人工",
    )
    CannedReply.objects.create(org=org, title="Greeting", text="Hello")
    BudgetFactory(org=org, money_limit=Decimal("10"), name="Monthly")
    SopPlanFactory(org=org, name="Follow-up")
    PlatformConnectionFactory(org=org, name="GeWe main", token="tok-never-shown-1234")
    AIAppFactory(org=org, name="Reply bot")
    alerting.alert_raise(
        org=org, alert_type="service_down", severity="critical", service="gewe", title="GeWe down"
    )
    theirs = WeChatAccountFactory(org=other_org, name="Their Device")
    ContactFactory(account=theirs, nickname="Their Customer")
    return {"account": account, "contact": contact, "conversation": conversation}


def login(client, role, org):
    user = UserFactory(default_org=org)  # no is_staff: membership alone opens the console
    MembershipFactory(org=org, user=user, role=role)
    client.force_login(user)
    return user


def shown_titles(menu) -> dict[str, list[str]]:
    """The menu without the optional items (groups left empty by them dropped)."""
    shown = {g: [t for t, _link in items if t not in OPTIONAL_ITEMS] for g, items in menu.items()}
    return {g: items for g, items in shown.items() if items}


def menu_of(response) -> dict[str, list[tuple[str, str]]]:
    return {
        str(group["title"]): [(str(item["title"]), item["link"]) for item in group["items"]]
        for group in response.context["sidebar_navigation"]
    }


def crawl(client, menu) -> list[str]:
    """Open every menu page and the first row of every list; return the failures."""
    failures = []
    for items in menu.values():
        for title, link in items:
            response = client.get(link)
            if response.status_code != 200:
                failures.append(f"{title} {link}: {response.status_code}")
                continue
            body = response.content.decode()
            match = re.search(r'href="(/admin/[a-z_]+/[a-z_]+/\d+/change/)[^"]*"', body)
            if match:
                row = client.get(match.group(1))
                if row.status_code != 200:
                    failures.append(f"{title} row {match.group(1)}: {row.status_code}")
    return failures


@pytest.mark.parametrize("role", ROLES)
def test_each_role_signs_in_sees_its_menu_and_every_page_opens(client, org, populated, role):
    login(client, role, org)
    home = client.get(reverse("admin:index"))
    assert home.status_code == 200
    menu = menu_of(home)
    assert shown_titles(menu) == expected_menu(role)
    assert crawl(client, menu) == []
    # Another organisation's rows never appear.
    contacts = client.get(reverse("admin:wechat_accounts_contact_changelist")).content.decode()
    assert "Customer Zhang" in contacts and "Their Customer" not in contacts


def test_superuser_sees_the_platform_internals(client, org, populated):
    user = UserFactory(is_superuser=True)
    client.force_login(user)
    home = client.get(reverse("admin:index"))
    menu = menu_of(home)
    assert shown_titles(menu) == expected_menu(None)
    failures = crawl(client, menu)
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_platform_internals_are_closed_to_every_role(client, org, populated, role):
    login(client, role, org)
    for name in (
        "integrations_webhookevent_changelist",
        "billing_reservation_changelist",
        "accounts_user_changelist",
        "auth_group_changelist",
        "django_celery_beat_periodictask_changelist",
        "token_blacklist_outstandingtoken_changelist",
    ):
        assert client.get(reverse(f"admin:{name}")).status_code == 403, name


def test_agent_edits_tags_and_remark_of_a_contact_only(client, org, populated):
    login(client, Role.AGENT, org)
    contact = populated["contact"]
    url = reverse("admin:wechat_accounts_contact_change", args=[contact.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert set(form.fields) <= {"tags", "remark"}
    new_tag = TagFactory(org=org, name="new")
    data = {"tags": [new_tag.pk], "remark": "Prefers mornings"}
    for inline in page.context["inline_admin_formsets"]:  # as the browser sends them
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
    response = client.post(url, data)
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.remark == "Prefers mornings"
    assert list(contact.tags.values_list("name", flat=True)) == ["new"]
    # Reading canned replies is fine, changing them is not; conversations are the workspace's.
    reply = CannedReply.objects.get(org=org)
    change = reverse("admin:conversations_cannedreply_change", args=[reply.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"title": "x", "text": "y"}).status_code == 403
    assert client.get(reverse("admin:conversations_cannedreply_add")).status_code == 403
    for name in (
        "conversations_conversation_changelist",
        "billing_budget_changelist",
        "integrations_platformconnection_changelist",
        "orgs_membership_changelist",
    ):
        assert client.get(reverse(f"admin:{name}")).status_code == 403, name


def test_agent_sees_only_their_own_notifications(client, org):
    agent = login(client, Role.AGENT, org)
    colleague = UserFactory()
    MembershipFactory(org=org, user=colleague, role=Role.AGENT)
    Notification.objects.create(org=org, user=agent, title="For me")
    Notification.objects.create(org=org, user=colleague, title="For a colleague")
    listing = client.get(reverse("admin:monitoring_notification_changelist")).content.decode()
    assert "For me" in listing and "For a colleague" not in listing


def test_viewer_reads_everything_and_changes_nothing(client, org, populated):
    login(client, Role.VIEWER, org)
    account = populated["account"]
    url = reverse("admin:wechat_accounts_wechataccount_change", args=[account.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"name": "Renamed"}).status_code == 403
    for name in (
        "sop_sopplan_add",
        "billing_budget_add",
        "conversations_cannedreply_add",
        "orgs_invitation_add",
    ):
        assert client.get(reverse(f"admin:{name}")).status_code == 403, name
    settings_page = client.get(reverse("admin:orgs_organization_settings"))
    assert settings_page.status_code == 200
    assert client.post(reverse("admin:orgs_organization_settings"), {}).status_code == 403


def test_manager_runs_campaigns_and_accounts_but_only_reads_budgets(client, org, populated):
    login(client, Role.MANAGER, org)
    assert client.get(reverse("admin:sop_sopplan_add")).status_code == 200
    account = populated["account"]
    assert (
        client.get(
            reverse("admin:wechat_accounts_wechataccount_change", args=[account.pk])
        ).context["has_change_permission"]
        is True
    )
    assert client.get(reverse("admin:conversations_cannedreply_add")).status_code == 200
    assert client.get(reverse("admin:billing_budget_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_budget_add")).status_code == 403
    assert client.get(reverse("admin:integrations_aiapp_add")).status_code == 403
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 403


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_and_owners_change_integrations_members_budgets_and_settings(
    client, org, populated, role
):
    login(client, role, org)
    for name in (
        "integrations_aiapp_add",
        "integrations_platformconnection_add",
        "billing_budget_add",
        "orgs_invitation_add",
        "monitoring_alertrule_add",
    ):
        assert client.get(reverse(f"admin:{name}")).status_code == 200, name
    response = client.post(
        reverse("admin:orgs_organization_settings"),
        {
            "handoff_keywords": "经理\n投诉",
            "handoff_ack_text": "",
            "ai_auto_return_minutes": "15",
            "ai_analysis_mode": "intent",
            "conversation_visibility": "assigned",
            "default_private_reply_policy": "all",
            "default_group_reply_policy": "mention",
            "wechat_send_limit_per_minute": "100",
        },
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.settings["handoff_keywords"] == ["经理", "投诉"]
    assert org.settings["conversation_visibility"] == "assigned"


def test_users_without_a_membership_cannot_sign_in(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_login_form_signs_in_a_member_without_is_staff(client, org):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=Role.AGENT)
    response = client.post(
        reverse("admin:login"),
        {"username": user.email, "password": DEFAULT_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_self_registered_owner_lands_in_their_organisation(client):
    from apps.orgs.services import organization_create

    user = UserFactory()
    organization = organization_create(name="Fresh Start", owner=user)
    client.force_login(user)
    home = client.get(reverse("admin:index"))
    assert home.status_code == 200
    assert home.context["console_org"] == organization
    assert "Fresh Start" in home.content.decode()


def test_switching_organisation_in_the_header(client, org, other_org, populated):
    user = login(client, Role.MANAGER, org)
    MembershipFactory(org=other_org, user=user, role=Role.VIEWER)
    page = client.get(reverse("admin:wechat_accounts_wechataccount_changelist"))
    assert "Sales Wang" in page.content.decode() and "Their Device" not in page.content.decode()
    assert b"console-org-select" in page.content
    response = client.post(
        reverse("admin:console_switch_org"),
        {"org": other_org.id, "next": reverse("admin:wechat_accounts_wechataccount_changelist")},
    )
    assert response.status_code == 302
    page = client.get(reverse("admin:wechat_accounts_wechataccount_changelist"))
    assert "Their Device" in page.content.decode() and "Sales Wang" not in page.content.decode()
    # The role follows the organisation: a viewer there.
    assert client.get(reverse("admin:sop_sopplan_add")).status_code == 403


def test_switching_to_an_organisation_one_is_not_in_answers_404(client, org, other_org):
    login(client, Role.OWNER, org)
    response = client.post(reverse("admin:console_switch_org"), {"org": other_org.id})
    assert response.status_code == 404


def test_console_search_is_scoped_to_the_active_organisation(client, org, populated):
    login(client, Role.MANAGER, org)
    url = reverse("admin:console_search")
    found = client.get(
        url, {"app_label": "wechat_accounts", "model_name": "contact", "term": "Customer"}
    ).json()
    assert [r["text"] for r in found["results"]] == ["Customer Zhang"]
    # A model the role may not view answers 404.
    assert (
        client.get(url, {"app_label": "integrations", "model_name": "webhookevent"}).status_code
        == 404
    )


def test_every_admin_page_is_in_the_navigation():
    """A page registered in the admin but missing from the sidebar is unreachable."""
    from django.contrib import admin

    from apps.core.navigation import NAVIGATION

    listed = {item.model.lower() for group in NAVIGATION for item in group.items if item.model}
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered - listed == set()


def test_campaign_targets_are_picked_by_search_within_the_organisation(client, org, populated):
    from django.core.exceptions import ValidationError

    from apps.core.widgets import IdListField
    from apps.wechat_accounts.models import Contact

    login(client, Role.MANAGER, org)
    page = client.get(reverse("admin:sop_sopplan_add")).content.decode()
    assert 'name="target_contact_ids"' in page and "admin-autocomplete" in page
    assert reverse("admin:console_search") in page
    field = IdListField(model_label="wechat_accounts.Contact")
    field.set_org(org)
    ours = populated["contact"]
    theirs = Contact.objects.exclude(org=org).first()
    assert field.clean([str(ours.pk)]) == [ours.pk]
    with pytest.raises(ValidationError):  # another organisation's contact is no choice
        field.clean([str(theirs.pk)])


def test_inviting_an_existing_member_is_a_form_error(client, org):
    admin_user = login(client, Role.ADMIN, org)
    response = client.post(
        reverse("admin:orgs_invitation_add"),
        {"org": org.id, "email": admin_user.email, "role": "agent"},
    )
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    response = client.post(
        reverse("admin:orgs_invitation_add"),
        {"org": org.id, "email": "new.person@example.com", "role": "owner"},
    )
    assert response.status_code == 200  # an admin cannot invite an owner
    response = client.post(
        reverse("admin:orgs_invitation_add"),
        {"org": org.id, "email": "new.person@example.com", "role": "agent"},
    )
    assert response.status_code == 302
