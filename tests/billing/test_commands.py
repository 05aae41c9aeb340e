import io

import pytest
from django.core.management import CommandError, call_command

from apps.billing import services
from apps.billing.models import Kind, UsageDaily, UsageMonthly
from tests.billing.factories import ModelPriceFactory

pytestmark = pytest.mark.django_db


def test_rebuild_usage_restores_the_aggregates(org, other_org):
    ModelPriceFactory(model="m-cmd")
    for o in (org, other_org):
        services.record_usage(
            org=o, provider="p", model="m-cmd", kind=Kind.CHAT, input_tokens=1000, request_id="c1"
        )
    UsageDaily.objects.filter(org=org).delete()
    UsageMonthly.objects.filter(org=org).update(cost=0)
    out = io.StringIO()
    call_command("billing_rebuild_usage", "--org", org.slug, stdout=out)
    assert "acme: 1 daily rows" in out.getvalue()
    assert UsageDaily.objects.get(org=org).cost == UsageMonthly.objects.get(org=org).cost
    assert UsageMonthly.objects.get(org=org).cost > 0
    call_command("billing_rebuild_usage", "--all", stdout=io.StringIO())
    assert UsageDaily.objects.count() == 2
    with pytest.raises(CommandError):
        call_command("billing_rebuild_usage", "--org", "missing", stdout=io.StringIO())
