"""factory-boy factories of the conversations app."""

import factory

from apps.conversations.models import Conversation, Message
from tests.orgs.factories import OrganizationFactory


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    org = factory.SubFactory(OrganizationFactory)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    org = factory.SelfAttribute("conversation.org")
    direction = Message.Direction.INBOUND
    sender_kind = Message.SenderKind.CUSTOMER
    text = factory.Sequence(lambda n: f"hello {n}")
