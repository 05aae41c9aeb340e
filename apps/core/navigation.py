"""The console's sidebar: navigation grouped by task, one place (``NAVIGATION``).

Each group lists items; an item links to a model's list (``model="app.Model"``: shown when the
model's admin lets the user view it, so the role policy of ``OrgScopedAdmin`` decides) or to a
named URL (``url="admin:..."``, shown when ``model`` (if given) is viewable and ``roles`` (if
given) contains the user's role; superusers see everything). A URL that does not resolve (an app
not installed yet) is left out, so the sidebar never links to a 404. Groups left empty for a
role are not shown.

To add a page, append an ``Item`` to its group, e.g. in the costs group:

    Item(_("Reports"), "analytics", url="admin:reports_index", roles=MANAGERS),

``UNFOLD["SIDEBAR"]["navigation"]`` points at ``sidebar`` (see config/settings/base.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from apps.core.admin import ADMINS, EVERYONE, MANAGERS, READERS  # noqa: F401 (for items)


@dataclass(frozen=True)
class Item:
    title: object
    icon: str
    model: str = ""  # "app_label.ModelName": link to its list and use its view permission
    url: str = ""  # a URL name (takes precedence over the model's list for the link)
    roles: tuple | None = None  # roles that see the item (None: decided by the model's admin)
    superuser_only: bool = False
    # A page of the active organisation: hidden from a superuser who is no member anywhere.
    needs_org: bool = False


@dataclass(frozen=True)
class Group:
    title: object
    items: list[Item] = field(default_factory=list)
    superuser_only: bool = False


NAVIGATION: list[Group] = [
    Group(
        _("Workbench"),
        [
            Item(_("Home"), "home", url="admin:index", roles=EVERYONE),
            Item(
                _("Agent workspace"),
                "forum",
                url="workspace:index",
                roles=EVERYONE,
                needs_org=True,
            ),
            # demo (issue 15): a simulated customer writes through the platform simulator.
            Item(
                _("Simulate a customer message"),
                "science",
                url="simulate_customer",
                roles=("agent", "manager", "admin", "owner"),
                needs_org=True,
            ),
            Item(_("Conversations"), "chat", model="conversations.Conversation"),
            Item(_("Messages"), "sms", model="conversations.Message"),
            Item(_("Media files"), "perm_media", model="media.MediaFile"),
            Item(_("Notifications"), "notifications", model="monitoring.Notification"),
        ],
    ),
    Group(
        _("Customers"),
        [
            Item(_("Contacts"), "contacts", model="wechat_accounts.Contact"),
            Item(_("Tags"), "sell", model="wechat_accounts.Tag"),
            Item(_("Conversation labels"), "label", model="conversations.Label"),
            Item(_("Canned replies"), "quickreply", model="conversations.CannedReply"),
            Item(_("Friend requests"), "person_add", model="wechat_accounts.FriendRequest"),
        ],
    ),
    Group(
        _("SOP campaigns"),
        [
            Item(_("SOP plans"), "campaign", model="sop.SopPlan"),
            Item(_("SOP runs"), "play_circle", model="sop.SopRun"),
            Item(_("SOP deliveries"), "outbox", model="sop.SopDelivery"),
            Item(_("Moments"), "photo_library", model="wechat_accounts.MomentPost"),
        ],
    ),
    Group(
        _("WeChat accounts"),
        [
            Item(_("WeChat accounts"), "smartphone", model="wechat_accounts.WeChatAccount"),
            Item(_("Status history"), "history", model="wechat_accounts.AccountStatusEvent"),
        ],
    ),
    Group(
        _("AI and integrations"),
        [
            Item(_("AI apps"), "smart_toy", model="integrations.AIApp"),
            Item(_("Platform connections"), "hub", model="integrations.PlatformConnection"),
            Item(_("AI turns"), "psychology", model="conversations.AITurn"),
            Item(_("AI drafts"), "edit_note", model="conversations.Draft"),
            Item(_("AI sessions"), "forum", model="conversations.AISession"),
            Item(_("Analysis backfills"), "manage_search", model="conversations.AnalysisBackfill"),
            Item(_("Integration calls"), "swap_horiz", model="integrations.IntegrationCall"),
        ],
    ),
    Group(
        _("Costs"),
        [
            # reports (issue 21): charts and tables; agents see their own figures.
            Item(_("Reports"), "analytics", model="reports.DailyStat", needs_org=True),
            Item(
                _("Usage"),
                "monitoring",
                url="admin:billing_costledger_usage",
                model="billing.CostLedger",
            ),
            Item(_("Budgets"), "savings", model="billing.Budget"),
            Item(_("Cost ledger"), "receipt_long", model="billing.CostLedger"),
            Item(_("Budget alerts"), "notification_important", model="billing.BudgetAlert"),
            Item(_("Model prices"), "sell", model="billing.ModelPrice"),
        ],
    ),
    Group(
        _("Monitoring and alerts"),
        [
            Item(
                _("Monitoring dashboard"),
                "monitor_heart",
                url="admin:monitoring_alert_dashboard",
                model="monitoring.Alert",
            ),
            Item(_("Alerts"), "warning", model="monitoring.Alert"),
            Item(_("Alert rules"), "rule", model="monitoring.AlertRule"),
            Item(_("Health samples"), "ecg_heart", model="monitoring.HealthSample"),
            Item(_("Notification webhooks"), "webhook", model="monitoring.NotificationWebhook"),
            Item(_("Notification deliveries"), "send", model="monitoring.NotificationDelivery"),
            Item(_("Monitoring settings"), "tune", model="monitoring.MonitoringConfig"),
        ],
    ),
    Group(
        _("Organisation settings"),
        [
            Item(
                _("Settings"),
                "settings",
                url="admin:orgs_organization_settings",
                model="orgs.Organization",
                needs_org=True,
            ),
            Item(_("Organisation"), "apartment", model="orgs.Organization"),
            Item(_("Members"), "group", model="orgs.Membership"),
            Item(_("Invitations"), "mail", model="orgs.Invitation"),
            Item(_("Audit log"), "policy", model="accounts.AuditEvent"),
        ],
    ),
    Group(
        _("Platform"),
        [
            Item(_("Users"), "person", model="accounts.User"),
            Item(_("Permission groups"), "groups", model="auth.Group"),
            Item(_("Webhook events"), "move_to_inbox", model="integrations.WebhookEvent"),
            Item(_("Budget reservations"), "lock_clock", model="billing.Reservation"),
            Item(_("Periodic tasks"), "schedule", model="django_celery_beat.PeriodicTask"),
            Item(_("Crontabs"), "calendar_month", model="django_celery_beat.CrontabSchedule"),
            Item(_("Intervals"), "timer", model="django_celery_beat.IntervalSchedule"),
            Item(_("Clocked schedules"), "alarm", model="django_celery_beat.ClockedSchedule"),
            Item(_("Solar schedules"), "wb_sunny", model="django_celery_beat.SolarSchedule"),
            Item(_("Issued tokens"), "key", model="token_blacklist.OutstandingToken"),
            Item(_("Blacklisted tokens"), "block", model="token_blacklist.BlacklistedToken"),
        ],
        superuser_only=True,
    ),
]


def _model_admin(site, label: str):
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return None, None
    return model, site._registry.get(model)


def _visible(item: Item, request, site) -> tuple[bool, str]:
    """(shown, link) of one item for this request."""
    user = request.user
    link = ""
    if item.model:
        model, model_admin = _model_admin(site, item.model)
        if model_admin is None:
            return False, ""
        if not user.is_superuser and not model_admin.has_view_permission(request):
            return False, ""
        meta = model._meta
        link = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    if item.url:
        try:
            link = reverse(item.url)
        except NoReverseMatch:
            return False, ""
    if item.superuser_only and not user.is_superuser:
        return False, ""
    if item.needs_org:
        from apps.core.console import console_membership

        if console_membership(request) is None:
            return False, ""
    if item.roles is not None and not user.is_superuser:
        from apps.core.console import console_role

        if console_role(request) not in item.roles:
            return False, ""
    return bool(link), link


def visible_navigation(request) -> list[tuple[Group, list[tuple[Item, str]]]]:
    """The groups and items this request's user may open, with their links."""
    from django.contrib import admin

    site = admin.site
    result = []
    for group in NAVIGATION:
        if group.superuser_only and not request.user.is_superuser:
            continue
        items = []
        for item in group.items:
            shown, link = _visible(item, request, site)
            if shown:
                items.append((item, link))
        if items:
            result.append((group, items))
    return result


def _active_link(request, links: list[str]) -> str:
    """The link the page belongs to: the longest one the path starts with (the settings page
    lives under the organisation list, a change page under its list)."""
    index = reverse("admin:index")
    path = request.path
    if path == index:
        return index
    candidates = [link for link in links if link != index and path.startswith(link.split("?")[0])]
    return max(candidates, key=len, default="")


def sidebar(request) -> list[dict]:
    """unfold's ``SIDEBAR.navigation`` for this request."""
    navigation = visible_navigation(request)
    active = _active_link(request, [link for _g, items in navigation for _i, link in items])
    return [
        {
            "title": group.title,
            "separator": True,
            "collapsible": False,
            "items": [
                {"title": item.title, "icon": item.icon, "link": link, "active": link == active}
                for item, link in items
            ],
        }
        for group, items in navigation
    ]
