import datetime as dt
from decimal import Decimal

import factory

from apps.billing.models import Budget, ModelPrice
from tests.orgs.factories import OrganizationFactory

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


class ModelPriceFactory(factory.django.DjangoModelFactory):
    """A price; global unless ``org`` is given. Model names avoid the seeded defaults."""

    class Meta:
        model = ModelPrice

    org = None
    provider = "*"
    model = factory.Sequence(lambda n: f"test-model-{n}")
    input_price_per_1k = Decimal("0.008")
    output_price_per_1k = Decimal("0.024")
    unit_price = Decimal("0")
    currency = "CNY"
    valid_from = PAST


class BudgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Budget

    org = factory.SubFactory(OrganizationFactory)
    scope = Budget.Scope.ORG
    money_limit = Decimal("100")
    token_limit = None
    currency = "CNY"
    soft_thresholds = factory.LazyFunction(lambda: [80, 95])
    action = Budget.Action.BLOCK
