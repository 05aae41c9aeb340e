"""Factories of the integrations app."""

from __future__ import annotations

import factory
from django.utils import timezone

from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from tests.orgs.factories import OrganizationFactory


class PlatformConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlatformConnection

    org = factory.SubFactory(OrganizationFactory)
    provider = PlatformConnection.Provider.GEWE
    name = factory.Sequence(lambda n: f"Connection {n}")
    base_url = "http://127.0.0.1:2531/v2/api"
    token = factory.Sequence(lambda n: f"gewe-token-{n:08d}-secret")


class AIAppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIApp

    org = factory.SubFactory(OrganizationFactory)
    provider = AIApp.Provider.OPENAI
    name = factory.Sequence(lambda n: f"AI app {n}")
    base_url = "http://127.0.0.1:3001/v1"
    api_key = factory.Sequence(lambda n: f"sk-test-{n:08d}-key")
    model = "qwen-plus"
    purpose = AIApp.Purpose.REPLY


class IntegrationCallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrationCall

    org = factory.SubFactory(OrganizationFactory)
    service = IntegrationCall.Service.GEWE
    operation = "send_text"
    http_status = 200
    ok = True
    latency_ms = 100
    attempt = 1
    at = factory.LazyFunction(timezone.now)
