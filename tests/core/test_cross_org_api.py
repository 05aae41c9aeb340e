"""Every organisation-scoped viewset with a detail route: another organisation's object answers
404 (one line per viewset, through ``tests.crossorg.CrossOrgCases``), and a guard that no such
viewset is left without its line."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from apps.billing.models import Budget, BudgetAlert, CostLedger, ModelPrice
from apps.conversations.models import CannedReply, Conversation, Draft
from apps.core.api.views import OrgScopedGenericViewSet
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.media.models import MediaFile
from apps.monitoring.models import Alert, Notification, NotificationWebhook
from apps.orgs.models import Invitation, Membership
from apps.sop.models import SopDelivery, SopPlan
from apps.wechat_accounts.models import Contact, FriendRequest, MomentPost, Tag, WeChatAccount
from tests.crossorg import CrossOrgCases, make_row

pytestmark = pytest.mark.django_db


def _fastgpt_app(org):
    return make_row(AIApp, org, provider=AIApp.Provider.FASTGPT)


def _group(org):
    return make_row(Contact, org, kind=Contact.Kind.GROUP, wxid="123@chatroom")


class TestEveryViewsetAnswers404ForAnotherOrganisation(CrossOrgCases):
    cross_org_cases = [
        ("/api/v1/orgs/members/{pk}/", Membership),
        ("/api/v1/orgs/invitations/{pk}/", Invitation),
        ("/api/v1/media/files/{pk}/", MediaFile),
        ("/api/v1/integrations/connections/{pk}/", PlatformConnection),
        ("/api/v1/integrations/ai-apps/{pk}/", AIApp),
        ("/api/v1/integrations/fastgpt/workflows/{pk}/", _fastgpt_app),
        ("/api/v1/integrations/calls/{pk}/", IntegrationCall),
        ("/api/v1/billing/prices/{pk}/", ModelPrice),
        ("/api/v1/billing/ledger/{pk}/", CostLedger),
        ("/api/v1/billing/budgets/{pk}/", Budget),
        ("/api/v1/billing/alerts/{pk}/", BudgetAlert),
        ("/api/v1/wechat-accounts/{pk}/", WeChatAccount),
        ("/api/v1/contacts/{pk}/", Contact),
        ("/api/v1/tags/{pk}/", Tag),
        ("/api/v1/groups/{pk}/members/", _group),
        ("/api/v1/moments/{pk}/", MomentPost),
        ("/api/v1/friend-requests/{pk}/", FriendRequest),
        ("/api/v1/conversations/{pk}/", Conversation),
        ("/api/v1/canned-replies/{pk}/", CannedReply),
        ("/api/v1/drafts/{pk}/", Draft),
        ("/api/v1/sop/plans/{pk}/", SopPlan),
        ("/api/v1/notifications/{pk}/", Notification),
        ("/api/v1/notification-webhooks/{pk}/", NotificationWebhook),
        ("/api/v1/monitoring/alerts/{pk}/", Alert),
    ]

    def test_another_orgs_sop_delivery_answers_404(self, api_client, other_org):
        delivery = make_row(SopDelivery, other_org)
        url = f"/api/v1/sop/plans/{delivery.plan_id}/deliveries/{delivery.pk}/"
        assert api_client.get(url).status_code == 404


def _detail_viewsets() -> set[type]:
    found: set[type] = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                cls = getattr(pattern.callback, "cls", None)
                if (
                    cls
                    and issubclass(cls, OrgScopedGenericViewSet)
                    and "pk" in pattern.pattern.regex.groupindex
                ):
                    found.add(cls)

    walk(get_resolver().url_patterns)
    return found


def test_every_scoped_viewset_with_a_detail_route_has_its_cross_org_line():
    covered = {
        resolve(url.format(pk=1)).func.cls
        for url, _make in TestEveryViewsetAnswers404ForAnotherOrganisation.cross_org_cases
    }
    covered.add(resolve("/api/v1/sop/plans/1/deliveries/1/").func.cls)
    missing = sorted(cls.__qualname__ for cls in _detail_viewsets() - covered)
    assert not missing, f"add a cross_org_cases line for: {missing}"


def test_a_viewset_cannot_override_get_queryset_or_get_object():
    for name in ("get_queryset", "get_object"):
        with pytest.raises(TypeError, match="scope_queryset"):
            type("Unscoped", (OrgScopedGenericViewSet,), {name: lambda self: None})
