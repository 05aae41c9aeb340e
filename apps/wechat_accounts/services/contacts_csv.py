"""CSV import and export of contacts and tags."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from apps.core import csv_export
from apps.core.exceptions import ApplicationError
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    Contact,
    Tag,
    WeChatAccount,
)
from apps.wechat_accounts.services.contacts import contact_upsert
from apps.wechat_accounts.services.tags import tag_create, tag_update

# -- CSV import / export -------------------------------------------------------------------

CONTACT_CSV_COLUMNS = [
    "account",
    "wxid",
    "kind",
    "nickname",
    "remark",
    "alias",
    "tags",
    "source",
    "blocked",
    "added_at",
]
TAG_CSV_COLUMNS = ["name", "color"]


def contacts_export_csv(*, queryset) -> str:
    """CSV of ``queryset`` (already scoped to the org by the caller's selector)."""
    out = io.StringIO()
    writer = csv_export.writer(out)
    writer.writerow(CONTACT_CSV_COLUMNS)
    for c in queryset.select_related("account").prefetch_related("tags"):
        writer.writerow(
            [
                c.account.name,
                c.wxid,
                c.kind,
                c.nickname,
                c.remark,
                c.alias,
                ";".join(sorted(t.name for t in c.tags.all())),
                c.source,
                "1" if c.is_blocked else "0",
                c.added_at.isoformat() if c.added_at else "",
            ]
        )
    return out.getvalue()


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)


def _decode_csv(data: bytes) -> str:
    """Text of an uploaded CSV: UTF-8 with or without BOM, else GB18030 (a superset of GBK,
    Excel's default on Chinese Windows). Anything else, or binary, is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ("utf-8-sig",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_binary(text):
            break
        return text
    raise ApplicationError(
        _("The file is not a CSV text file (UTF-8 or GBK/GB18030)."),
        code="invalid_file",
        fields={"file": [_("Upload a CSV file encoded in UTF-8 or GBK/GB18030.")]},
    )


def _looks_binary(text: str) -> bool:
    return any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text) or "\x7f" in text


def _read_csv(data: bytes | str) -> list[dict]:
    if isinstance(data, bytes):
        data = _decode_csv(data)
    elif _looks_binary(data):
        raise ApplicationError(_("The file is not a CSV text file (UTF-8 or GBK/GB18030)."))
    try:
        return list(csv.DictReader(io.StringIO(data)))
    except csv.Error as exc:
        raise ApplicationError(
            _("The CSV file cannot be read: %(error)s") % {"error": exc}, code="invalid_file"
        ) from None


def contacts_import_csv(
    *, org: Organization, data: bytes | str, account: WeChatAccount | None = None
) -> ImportResult:
    """Import contacts (columns as in the export; ``account`` column = account name unless an
    account is given). Tags are created by name. Rows with errors are reported, not fatal."""
    result = ImportResult()
    accounts = {a.name: a for a in WeChatAccount.objects.filter(org=org)}
    for line, row in enumerate(_read_csv(data), start=2):
        target = account or accounts.get((row.get("account") or "").strip())
        wxid = (row.get("wxid") or "").strip()
        if target is None or target.org_id != org.pk:
            result.errors.append({"line": line, "error": _("Unknown account.")})
            continue
        if not wxid:
            result.errors.append({"line": line, "error": _("wxid is required.")})
            continue
        kind = (row.get("kind") or "").strip() or None
        if kind and kind not in Contact.Kind.values:
            result.errors.append({"line": line, "error": _("Unknown kind.")})
            continue
        added = parse_datetime(row.get("added_at") or "") if row.get("added_at") else None
        try:
            with transaction.atomic():
                existed = Contact.objects.filter(account=target, wxid=wxid).exists()
                contact = contact_upsert(
                    org=org,
                    account=target,
                    wxid=wxid,
                    kind=kind,
                    nickname=row.get("nickname") or None,
                    remark=row.get("remark") or None,
                    alias=row.get("alias") or None,
                    source=row.get("source") or "import",
                    added_at=added,
                )
                blocked = (row.get("blocked") or "").strip().lower() in ("1", "true", "yes")
                if contact.is_blocked != blocked and row.get("blocked") not in (None, ""):
                    contact.is_blocked = blocked
                    contact.save(update_fields=["is_blocked", "updated_at"])
                names = [n.strip() for n in (row.get("tags") or "").split(";") if n.strip()]
                for name in names:
                    tag, _c = Tag.objects.get_or_create(org=org, name=name[:60])
                    contact.tags.add(tag)
        except ApplicationError as exc:
            result.errors.append({"line": line, "error": exc.message, "fields": exc.fields})
            continue
        if existed:
            result.updated += 1
        else:
            result.created += 1
    return result


def tags_export_csv(*, queryset) -> str:
    out = io.StringIO()
    writer = csv_export.writer(out)
    writer.writerow(TAG_CSV_COLUMNS)
    for tag in queryset:
        writer.writerow([tag.name, tag.color])
    return out.getvalue()


def tags_import_csv(*, org: Organization, data: bytes | str) -> ImportResult:
    result = ImportResult()
    for line, row in enumerate(_read_csv(data), start=2):
        name = (row.get("name") or "").strip()
        color = (row.get("color") or "").strip() or "#1677ff"
        if not name:
            result.errors.append({"line": line, "error": _("name is required.")})
            continue
        tag = Tag.objects.filter(org=org, name=name).first()
        try:
            if tag is None:
                tag_create(org=org, name=name, color=color)
                result.created += 1
            else:
                tag_update(org=org, tag_id=tag.pk, color=color)
                result.updated += 1
        except ApplicationError as exc:
            result.errors.append({"line": line, "error": exc.message, "fields": exc.fields})
    return result
