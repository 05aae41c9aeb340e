"""Factories of the wechat_accounts app (rows of one org stay in that org)."""

from __future__ import annotations

import factory

from apps.wechat_accounts.models import Contact, Tag, WeChatAccount
from tests.integrations.factories import PlatformConnectionFactory
from tests.orgs.factories import OrganizationFactory


class WeChatAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WeChatAccount

    org = factory.SubFactory(OrganizationFactory)
    connection = factory.SubFactory(PlatformConnectionFactory, org=factory.SelfAttribute("..org"))
    name = factory.Sequence(lambda n: f"Sales phone {n}")
    delay_min_seconds = 0
    delay_max_seconds = 0


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(WeChatAccountFactory)
    org = factory.SelfAttribute("account.org")
    wxid = factory.Sequence(lambda n: f"wxid_contact{n:05d}")
    nickname = factory.Sequence(lambda n: f"Customer {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"tag{n}")
