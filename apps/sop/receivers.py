"""Relative triggers: enrol contacts when a friend is added or a tag is applied.

Listens to the domain events ``apps.core.events.contact_added`` / ``tag_applied`` and, until
the WeChat-accounts services send them everywhere, to the model signals they imply (a new
friend ``Contact`` row, a tag added to ``Contact.tags``). Enrolment is idempotent (one per
plan and contact), so hearing the same fact twice is harmless. Work runs in a task after the
sender's transaction commits.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from apps.core import events
from apps.wechat_accounts.models import Contact

# Contacts created by an outbound send to an unknown wxid are not new friends.
NOT_ADDED_SOURCES = frozenset({"outbound"})


def _contact_added_later(org_id: int, contact_id: int) -> None:
    from apps.sop.tasks import sop_contact_added

    transaction.on_commit(lambda: sop_contact_added.delay(org_id=org_id, contact_id=contact_id))


def _tag_applied_later(org_id: int, contact_id: int, tag_id: int) -> None:
    from apps.sop.tasks import sop_tag_applied

    transaction.on_commit(
        lambda: sop_tag_applied.delay(org_id=org_id, contact_id=contact_id, tag_id=tag_id)
    )


@receiver(events.contact_added, dispatch_uid="sop.contact_added")
def on_contact_added(sender, *, org_id: int, contact_id: int, **kwargs) -> None:
    _contact_added_later(org_id, contact_id)


@receiver(events.tag_applied, dispatch_uid="sop.tag_applied")
def on_tag_applied(sender, *, org_id: int, contact_id: int, tag_id: int, **kwargs) -> None:
    _tag_applied_later(org_id, contact_id, tag_id)


@receiver(post_save, sender=Contact, dispatch_uid="sop.contact_created")
def on_contact_created(sender, instance: Contact, created: bool, raw: bool = False, **kwargs):
    if raw or not created or instance.kind != Contact.Kind.FRIEND:
        return
    if instance.source in NOT_ADDED_SOURCES:
        return
    _contact_added_later(instance.org_id, instance.pk)


@receiver(m2m_changed, sender=Contact.tags.through, dispatch_uid="sop.contact_tags")
def on_contact_tags(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action != "post_add" or not pk_set:
        return
    if reverse:  # tag.contacts.add(...)
        for contact_id in pk_set:
            _tag_applied_later(instance.org_id, contact_id, instance.pk)
    else:
        for tag_id in pk_set:
            _tag_applied_later(instance.org_id, instance.pk, tag_id)
