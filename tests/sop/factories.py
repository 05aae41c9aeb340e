"""Factories of the sop app (rows of one org stay in that org)."""

from __future__ import annotations

import factory

from apps.sop.models import SopPlan, SopStep
from tests.orgs.factories import OrganizationFactory


class SopPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SopPlan

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Plan {n}")
    trigger = SopPlan.Trigger.ONCE


class SopStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SopStep

    plan = factory.SubFactory(SopPlanFactory)
    org = factory.SelfAttribute("plan.org")
    order = factory.Sequence(lambda n: n)
    kind = SopStep.Kind.TEXT
    text = "Hello {nickname}"
