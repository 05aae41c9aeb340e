"""Contacts: upsert, remove, update, full sync and group members."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import events
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.redis import get_redis, redis_key
from apps.integrations import platform_data as pd
from apps.integrations.clients import errors as client_errors
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    Contact,
    GroupMember,
    Tag,
    WeChatAccount,
)
from apps.wechat_accounts.platform import client_for_account
from apps.wechat_accounts.services._common import (
    Status,
    _account_for_update,
    _account_get,
    _push_account,
    _release,
    _save,
    _validation_to_app_error,
)

logger = logging.getLogger(__name__)


# -- contacts ------------------------------------------------------------------------------

CONTACT_FIELDS = ("kind", "nickname", "remark", "alias", "avatar_url", "sex", "source")


@transaction.atomic
def contact_upsert(
    *,
    org: Organization | int,
    account: WeChatAccount,
    wxid: str,
    kind: str | None = None,
    nickname: str | None = None,
    remark: str | None = None,
    alias: str | None = None,
    avatar_url: str | None = None,
    sex: int | None = None,
    source: str | None = None,
    added_at: datetime | None = None,
    attributes: dict | None = None,
) -> Contact:
    """Create or update the contact ``wxid`` of ``account``; only arguments that are not None
    are written (a webhook with a partial profile never blanks other fields). A removed
    contact that reappears is restored."""
    org_id = getattr(org, "pk", org)
    if account.org_id != org_id:
        raise NotFoundError(_("WeChat account not found."))
    wxid = (wxid or "").strip()
    if not wxid:
        raise ApplicationError(_("Invalid data."), fields={"wxid": [_("This field is required.")]})
    contact = Contact.objects.select_for_update().filter(account=account, wxid=wxid).first()
    created = contact is None
    if created:
        contact = Contact(
            org_id=org_id,
            account=account,
            wxid=wxid,
            kind=kind or Contact.kind_for_wxid(wxid),
            added_at=added_at or timezone.now(),
        )
    # Platform data is data: cosmetic fields are cut or dropped, never refused.
    values = {
        "kind": kind,
        "nickname": None if nickname is None else pd.text(nickname, 200, field="contact.nickname"),
        "remark": None if remark is None else pd.text(remark, 200, field="contact.remark"),
        "alias": None if alias is None else pd.text(alias, 128, field="contact.alias"),
        "avatar_url": None
        if avatar_url is None
        else pd.url(avatar_url, 1000, field="contact.avatar"),
        "sex": None if sex is None else pd.small_int(sex, field="contact.sex", high=9),
        "source": None if source is None else pd.text(source, 32, field="contact.source"),
    }
    changed = []
    for name, value in values.items():
        if value is not None and getattr(contact, name) != value:
            setattr(contact, name, value)
            changed.append(name)
    if attributes is not None:
        contact.attributes = {**(contact.attributes or {}), **attributes}
        changed.append("attributes")
    if added_at is not None and not created:
        contact.added_at = added_at
        changed.append("added_at")
    if contact.removed_at is not None:
        contact.removed_at = None
        changed.append("removed_at")
    contact.nickname = (contact.nickname or "")[:200]
    if created:
        try:
            contact.full_clean(validate_constraints=False)
        except ValidationError as exc:
            raise _validation_to_app_error(exc) from exc
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:  # created concurrently: update that row instead
            return contact_upsert(
                org=org_id,
                account=account,
                wxid=wxid,
                kind=kind,
                nickname=nickname,
                remark=remark,
                alias=alias,
                avatar_url=avatar_url,
                sex=sex,
                source=source,
            )
    elif changed:
        _save(contact, changed)
    return contact


@transaction.atomic
def contact_remove(*, org: Organization | int, account: WeChatAccount, wxid: str) -> bool:
    """The platform says the contact was deleted (DelContacts): keep the row and its history,
    mark it removed."""
    org_id = getattr(org, "pk", org)
    return bool(
        Contact.objects.filter(org_id=org_id, account=account, wxid=wxid, removed_at=None).update(
            removed_at=timezone.now(), updated_at=timezone.now()
        )
    )


@transaction.atomic
def contact_update(*, org: Organization, contact_id: int, **fields: Any) -> Contact:
    contact = Contact.objects.select_for_update().filter(org=org, pk=contact_id).first()
    if contact is None:
        raise NotFoundError(_("Contact not found."))
    tags = fields.pop("tags", None)
    allowed = {"remark", "attributes", "is_blocked", "source"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    for name, value in fields.items():
        setattr(contact, name, value)
    if fields:
        _save(contact, list(fields))
    if tags is not None:
        if any(tag.org_id != org.pk for tag in tags):
            raise ApplicationError(_("Invalid data."), fields={"tags": [_("Unknown tag.")]})
        contact.tags.set(tags)
    return contact


def account_sync_contacts_start(*, org: Organization, account_id: int) -> WeChatAccount:
    """Mark a full contact sync as started and enqueue it (after commit)."""
    from apps.wechat_accounts.tasks import contacts_sync as sync_task

    with transaction.atomic():
        account = _account_for_update(org=org, account_id=account_id)
        if account.status != Status.ONLINE:
            raise ConflictError(_("The account must be online to sync contacts."))
        account.contacts_sync_state = WeChatAccount.SyncState.RUNNING
        account.contacts_sync_done = 0
        account.contacts_sync_total = 0
        account.contacts_sync_error = ""
        _save(
            account,
            [
                "contacts_sync_state",
                "contacts_sync_done",
                "contacts_sync_total",
                "contacts_sync_error",
            ],
        )
        _push_account(account, "contact_sync_progress")
        org_id = org.pk
        transaction.on_commit(lambda: sync_task.delay(org_id=org_id, account_id=account_id))
    return account


def _sync_progress(account: WeChatAccount, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(account, name, value)
    WeChatAccount.objects.filter(pk=account.pk).update(updated_at=timezone.now(), **fields)
    _push_account(account, "contact_sync_progress")


@dataclass
class SyncResult:
    total: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    groups: int = 0


def contacts_sync(*, org_id: int, account_id: int) -> SyncResult:
    """Full contact sync: the id list, then profile details in batches of
    ``WECHAT_CONTACT_SYNC_BATCH`` (progress done/total in the account row and pushed as
    ``contact_sync_progress`` after every batch), platform labels as tags, group members.
    Contacts no longer listed are marked removed. Re-running is harmless (upserts)."""
    account = _account_get(org=org_id, account_id=account_id)
    lock = get_redis().lock(
        redis_key("wechat", "sync", account_id), timeout=3600, blocking_timeout=0
    )
    if not lock.acquire(blocking=False):
        return SyncResult()
    result = SyncResult()
    try:
        client = client_for_account(account)
        device = account.device_id
        try:
            listing = client.list_contacts(device)
            labels = client.list_labels(device)
        except client_errors.IntegrationError as exc:
            _sync_progress(
                account,
                contacts_sync_state=WeChatAccount.SyncState.FAILED,
                contacts_sync_error=str(exc)[:300],
            )
            return result
        tag_by_label = _tags_from_labels(account, labels)
        kinds: dict[str, str] = {}
        # Platform data is data: an id that cannot be a wxid is dropped (logged, counted).
        for ids, kind in (
            (listing.friends, Contact.Kind.FRIEND),
            (listing.chatrooms, Contact.Kind.GROUP),
            (listing.ghs, Contact.Kind.OFFICIAL),
        ):
            for wxid in pd.id_list(list(ids or []), 128, field="contacts.wxid"):
                kinds[wxid] = kind
        wxids = list(kinds)
        result.total = len(wxids)
        _sync_progress(account, contacts_sync_total=len(wxids), contacts_sync_done=0)
        batch_size = max(1, min(settings.WECHAT_CONTACT_SYNC_BATCH, 100))
        done = 0
        for start in range(0, len(wxids), batch_size):
            batch = wxids[start : start + batch_size]
            try:
                details = {
                    pd.ident(c.wxid, 128, field="contacts.detail_wxid"): c
                    for c in client.get_contacts_brief(device, batch)
                }
            except client_errors.IntegrationError as exc:
                _sync_progress(
                    account,
                    contacts_sync_state=WeChatAccount.SyncState.FAILED,
                    contacts_sync_error=str(exc)[:300],
                )
                return result
            created, updated = _bulk_upsert_contacts(account, batch, kinds, details, tag_by_label)
            result.created += created
            result.updated += updated
            done += len(batch)
            _sync_progress(account, contacts_sync_done=done)
        result.removed = (
            Contact.objects.filter(
                account=account,
                removed_at=None,
                kind__in=list(set(kinds.values())) or [Contact.Kind.FRIEND],
            )
            .exclude(wxid__in=wxids)
            .update(removed_at=timezone.now())
            if wxids
            else 0
        )
        for group in Contact.objects.filter(
            account=account, kind=Contact.Kind.GROUP, removed_at=None
        ):
            try:
                group_members_sync(org_id=org_id, group=group, client=client)
                result.groups += 1
            except client_errors.IntegrationError as exc:
                logger.info("members of %s not synced: %s", group.wxid, exc)
        now = timezone.now()
        _sync_progress(
            account,
            contacts_sync_state=WeChatAccount.SyncState.DONE,
            contacts_synced_at=now,
        )
        return result
    finally:
        _release(lock)


def _tags_from_labels(account: WeChatAccount, labels: list) -> dict[str, Tag]:
    tags: dict[str, Tag] = {}
    for label in labels:
        name = pd.text(label.name, 60, field="label.name").strip()
        label_id = pd.ident(label.label_id, 64, field="label.id")
        if not name or not label_id:
            continue
        tag, _created = Tag.objects.get_or_create(org_id=account.org_id, name=name)
        ids = dict(tag.platform_label_ids or {})
        if ids.get(str(account.pk)) != label_id:
            ids[str(account.pk)] = label_id
            Tag.objects.filter(pk=tag.pk).update(platform_label_ids=ids)
        tags[label_id] = tag
    return tags


@transaction.atomic
def _bulk_upsert_contacts(
    account: WeChatAccount, batch: list[str], kinds: dict, details: dict, tag_by_label: dict
) -> tuple[int, int]:
    now = timezone.now()
    existing = {c.wxid: c for c in Contact.objects.filter(account=account, wxid__in=batch)}
    to_create, to_update = [], []
    for wxid in batch:
        detail = details.get(wxid)
        values = {
            "kind": kinds[wxid],
            "nickname": pd.text(getattr(detail, "nickname", ""), 200, field="contact.nickname"),
            "remark": pd.text(getattr(detail, "remark", ""), 200, field="contact.remark"),
            "alias": pd.text(getattr(detail, "alias", ""), 128, field="contact.alias"),
            "avatar_url": pd.url(getattr(detail, "avatar_url", ""), 1000, field="contact.avatar"),
            "sex": pd.small_int(getattr(detail, "sex", None), field="contact.sex", high=9),
        }
        contact = existing.get(wxid)
        if contact is None:
            to_create.append(
                Contact(
                    org_id=account.org_id,
                    account=account,
                    wxid=wxid,
                    source="sync",
                    added_at=now,
                    synced_at=now,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                if value or name == "kind":
                    setattr(contact, name, value)
            contact.synced_at = now
            contact.removed_at = None
            contact.updated_at = now
            to_update.append(contact)
    Contact.objects.bulk_create(to_create, ignore_conflicts=True)
    if to_update:
        Contact.objects.bulk_update(
            to_update,
            [
                "kind",
                "nickname",
                "remark",
                "alias",
                "avatar_url",
                "sex",
                "synced_at",
                "removed_at",
                "updated_at",
            ],
        )
    if tag_by_label:
        contacts = {c.wxid: c for c in Contact.objects.filter(account=account, wxid__in=batch)}
        through = Contact.tags.through
        rows = []
        for wxid, detail in details.items():
            label_ids = pd.id_list(getattr(detail, "label_ids", None), 64, field="contact.labels")
            if wxid in contacts and label_ids:
                for label_id in label_ids:
                    tag = tag_by_label.get(str(label_id))
                    if tag is not None:
                        rows.append(through(contact_id=contacts[wxid].pk, tag_id=tag.pk))
        existing = set(
            through.objects.filter(contact_id__in=[r.contact_id for r in rows]).values_list(
                "contact_id", "tag_id"
            )
        )
        new_rows = [r for r in rows if (r.contact_id, r.tag_id) not in existing]
        through.objects.bulk_create(new_rows, ignore_conflicts=True)
        # A bulk insert fires no m2m signal: announce each newly applied tag (SOP triggers).
        applied = [(r.contact_id, r.tag_id) for r in new_rows]
        if applied:
            org_id = account.org_id
            transaction.on_commit(
                lambda: [
                    events.tag_applied.send(
                        sender=Contact, org_id=org_id, contact_id=contact_id, tag_id=tag_id
                    )
                    for contact_id, tag_id in applied
                ]
            )
    return len(to_create), len(to_update)


@dataclass(frozen=True)
class _Member:
    wxid: str
    nickname: str
    display_name: str
    inviter: str


def group_members_sync(*, org_id: int, group: Contact, client: Any = None) -> int:
    """Replace the stored member list of ``group`` with the platform's."""
    if group.org_id != org_id or group.kind != Contact.Kind.GROUP:
        raise NotFoundError(_("Group not found."))
    client = client or client_for_account(group.account)
    members = []
    seen = set()
    for member in client.list_group_members(group.account.device_id, group.wxid) or []:
        wxid = pd.ident(getattr(member, "wxid", ""), 128, field="group_member.wxid")
        if wxid and wxid not in seen:
            seen.add(wxid)
            members.append(
                _Member(
                    wxid=wxid,
                    nickname=pd.text(member.nickname, 200, field="group_member.nickname"),
                    display_name=pd.text(
                        member.display_name, 200, field="group_member.display_name"
                    ),
                    inviter=pd.ident(member.inviter, 128, field="group_member.inviter"),
                )
            )
    with transaction.atomic():
        GroupMember.objects.filter(group=group).exclude(
            member_wxid__in=[m.wxid for m in members]
        ).delete()
        existing = {m.member_wxid: m for m in GroupMember.objects.filter(group=group)}
        new = []
        for m in members:
            row = existing.get(m.wxid)
            if row is None:
                new.append(
                    GroupMember(
                        org_id=org_id,
                        group=group,
                        member_wxid=m.wxid,
                        nickname=(m.nickname or "")[:200],
                        display_name=(m.display_name or "")[:200],
                        inviter_wxid=(m.inviter or "")[:128],
                    )
                )
            else:
                row.nickname = (m.nickname or "")[:200]
                row.display_name = (m.display_name or "")[:200]
                row.save(update_fields=["nickname", "display_name", "updated_at"])
        GroupMember.objects.bulk_create(new, ignore_conflicts=True)
    return len(members)
