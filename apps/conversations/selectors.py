"""Reads of the conversations app, always scoped to one organisation."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.lookups import IsNull

from apps.conversations.models import (
    CannedReply,
    Conversation,
    ConversationNote,
    Draft,
    Label,
    Message,
)
from apps.conversations.org_prefs import sees_all
from apps.orgs.models import Organization


def contact_display_name(contact) -> str:
    """Remark, else nickname (a group's name), else the WeChat id a person chose; never the
    raw wxid when the platform gave a name."""
    if contact is None:
        return ""
    return contact.remark or contact.nickname or contact.alias or contact.wxid


def conversation_list(
    *, org: Organization, user=None, role: str | None = None
) -> QuerySet[Conversation]:
    """The conversations of ``org`` the user may see: all of them, or, when the organisation's
    visibility rule is ``assigned``, an agent's (or viewer's) own plus unassigned ones
    (``role``: the user's role in ``org`` when the caller knows it, saving a query)."""
    qs = Conversation.objects.filter(org=org)
    if not sees_all(org=org, user=user, role=role):
        qs = qs.filter(Q(assignee=user) | Q(assignee__isnull=True))
    return qs


def conversation_visible(*, org: Organization, user, role: str | None, conversation) -> bool:
    """Whether a loaded conversation is visible to the member (same rule as
    ``conversation_list``, without a query)."""
    if conversation is None or conversation.org_id != org.id:
        return False
    if sees_all(org=org, user=user, role=role):
        return True
    return conversation.assignee_id in (None, getattr(user, "id", None))


def _message_search(org: Organization, q: str) -> QuerySet[Message]:
    """Messages containing every whitespace-separated term of ``q`` (case-insensitive).

    Containment, not word search: Chinese has no spaces, so word-based full-text search finds
    little. On PostgreSQL a term of three characters or more is served by the trigram index on
    ``UPPER(text)`` (what ``icontains`` compares; migration 0009). A shorter term has no
    trigram and scans the organisation's messages; when it has no letter case (Chinese,
    digits) it is compared as it is, without ``UPPER()`` of every message (half the time of
    the scan, bench/workspace), which finds the same messages.
    """
    messages = Message.objects.filter(org=org)
    for term in q.split():
        if len(term) < 3 and term.upper() == term.lower():
            messages = messages.filter(text__contains=term)
        else:
            messages = messages.filter(text__icontains=term)
    return messages


# How many matching messages the search reads before it calls a term frequent (see below).
SEARCH_PROBE_MESSAGES = 2000


def _search_filter(org: Organization, q: str) -> Q:
    """Conversations with a message matching ``q``, or whose contact's name contains it.

    The matching messages are read first, up to ``SEARCH_PROBE_MESSAGES`` rows (the trigram
    index finds a rare term's few rows; a frequent term's first rows come straight from a
    scan). Fewer rows: their conversation ids are the whole answer, a plain id list. As many:
    the term is frequent, and each conversation the list reads is asked for its newest
    matching message (its own messages, through the (org, conversation, created_at) index),
    so the list stops after a page and the capped count after ``count_limit`` rows. Left to
    one subquery, PostgreSQL hashed every matching message (or, past ``work_mem``, compared
    each with every conversation: seconds with 1,000,000 messages, bench/workspace).
    """
    messages = _message_search(org, q)
    probe = messages.order_by().values_list("conversation_id", flat=True)  # any rows will do
    hits = list(probe[:SEARCH_PROBE_MESSAGES])
    if len(hits) < SEARCH_PROBE_MESSAGES:
        in_messages = Q(pk__in=sorted(set(hits)))
    else:
        # A scalar subquery, not EXISTS: PostgreSQL may turn EXISTS into a hashed set of all
        # the matches again, never a "first row" subquery.
        newest_hit = messages.filter(conversation_id=OuterRef("pk")).order_by("-created_at")
        in_messages = Q(IsNull(Subquery(newest_hit.values("pk")[:1]), False))
    return in_messages | Q(contact__nickname__icontains=q) | Q(contact__remark__icontains=q)


# The related columns a row of the list shows (``ConversationSerializer``); a list row loads
# no others (an account's login QR image, a contact's attributes, a user's password hash).
LIST_ROW_RELATED_FIELDS = {
    "account": {"id", "name"},
    "contact": {"id", "wxid", "kind", "nickname", "remark", "alias", "avatar_url", "is_blocked"},
    "assignee": {"id", "name", "email"},
}


def _list_row_deferred() -> list[str]:
    deferred = []
    for relation, shown in LIST_ROW_RELATED_FIELDS.items():
        model = Conversation._meta.get_field(relation).related_model
        deferred += [
            f"{relation}__{field.name}"
            for field in model._meta.concrete_fields
            if field.name not in shown
        ]
    return deferred


INBOX_VIEWS = ("mine", "unassigned", "waiting", "ai", "resolved", "all")


def _view_filters(user) -> dict[str, Q]:
    """The workspace's views (left pane) as filters; "waiting" is sorted oldest first."""
    active = ~Q(status=Conversation.Status.RESOLVED)
    return {
        "mine": Q(assignee=user) & active if user is not None else Q(pk__in=[]),
        "unassigned": Q(assignee__isnull=True) & active,
        "waiting": Q(mode=Conversation.Mode.HUMAN, status=Conversation.Status.PENDING),
        "ai": Q(mode=Conversation.Mode.AI)
        & Q(status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING]),
        "resolved": Q(status=Conversation.Status.RESOLVED),
        "all": Q(),
    }


def conversation_view_counts(
    *, org: Organization, user=None, role: str | None = None
) -> dict[str, int]:
    """How many conversations each workspace view holds, in one query; ``unread``: how many
    visible conversations have unread messages."""
    from django.db.models import Count

    aggregates = {
        name: Count("id", filter=condition) for name, condition in _view_filters(user).items()
    }
    aggregates["unread"] = Count("id", filter=Q(unread_count__gt=0) & ~Q(status="resolved"))
    return conversation_list(org=org, user=user, role=role).aggregate(**aggregates)


def conversation_inbox(
    *,
    org: Organization,
    user=None,
    role: str | None = None,
    view: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    assignee: str | None = None,
    account_id: int | None = None,
    label: str | None = None,
    unread: bool | None = None,
    updated_since: datetime | None = None,
    q: str | None = None,
    list_rows: bool = False,
) -> QuerySet[Conversation]:
    """The agent inbox: filters, message-text search, newest activity first.

    ``view``: one of ``INBOX_VIEWS``; ``assignee``: a user id, ``me`` or ``none``; ``label``: a
    label id or name; ``list_rows``: load only the related columns a list row shows.
    """
    qs = conversation_list(org=org, user=user, role=role)
    if view and view in INBOX_VIEWS:
        qs = qs.filter(_view_filters(user)[view])
    if status:
        qs = qs.filter(status__in=status.split(","))
    if mode:
        qs = qs.filter(mode=mode)
    if assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee == "me" and user is not None:
        qs = qs.filter(assignee=user)
    elif assignee:
        qs = qs.filter(assignee_id=int(assignee))
    if account_id:
        qs = qs.filter(account_id=account_id)
    if label:
        key = {"id": int(label)} if str(label).isdigit() else {"name": label}
        qs = qs.filter(
            Exists(
                Label.conversations.through.objects.filter(
                    conversation_id=OuterRef("pk"), label__in=Label.objects.filter(org=org, **key)
                )
            )
        )
    if unread is True:
        qs = qs.filter(unread_count__gt=0)
    elif unread is False:
        qs = qs.filter(unread_count=0)
    if updated_since:
        qs = qs.filter(updated_at__gte=updated_since)
    if q:
        qs = qs.filter(_search_filter(org, q))
    # Newest message per row through the (org, conversation, created_at) index.
    last_text = (
        Message.objects.filter(org_id=OuterRef("org_id"), conversation_id=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("text")[:1]
    )
    # The organisation's pending drafts (the (org, conversation, status) index); without the
    # org, PostgreSQL hashed every organisation's pending drafts for each page.
    pending_drafts = Draft.objects.filter(
        org=org, conversation_id=OuterRef("pk"), status=Draft.Status.PENDING
    )
    order = ["handed_off_at", "id"] if view == "waiting" else ["-last_message_at", "-id"]
    if list_rows:
        qs = qs.defer(*_list_row_deferred())
    return (
        qs.select_related("account", "contact", "assignee")
        .prefetch_related("labels")
        .annotate(last_message_text=Subquery(last_text), has_drafts=Exists(pending_drafts))
        .order_by(*order)
    )


def conversation_get(
    *, org: Organization, conversation_id: int, user=None, role: str | None = None
) -> Conversation | None:
    return conversation_inbox(org=org, user=user, role=role).filter(pk=conversation_id).first()


def message_list(*, org: Organization, conversation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(org=org, conversation_id=conversation_id).select_related(
        "sender_user", "media_file"
    )


def note_list(*, org: Organization, conversation_id: int, limit: int = 500) -> list:
    """A conversation's private notes, oldest first (the newest ``limit``)."""
    newest = (
        ConversationNote.objects.filter(org=org, conversation_id=conversation_id)
        .select_related("author")
        .order_by("-created_at", "-id")[:limit]
    )
    return list(reversed(newest))


def customer_panel(*, org: Organization, conversation: Conversation, user=None) -> dict:
    """What the workspace's right pane shows for a conversation (a bounded number of queries):
    the contact, its tags (and the organisation's, to pick from), the serving account, the
    contact's other conversations, this conversation's AI cost, the latest intent/sentiment,
    and sections registered by other apps (``apps.conversations.workspace.panels``)."""
    from django.db.models import Sum
    from django.urls import reverse

    from apps.conversations.workspace import panels
    from apps.wechat_accounts.models import Tag

    contact = conversation.contact
    account = conversation.account
    tags = list(contact.tags.all()) if contact else []
    all_tags = list(Tag.objects.filter(org=org).order_by("name")[:200])
    previous = []
    if contact is not None:
        previous = list(
            conversation_list(org=org, user=user)
            .filter(contact__wxid=contact.wxid)
            .exclude(pk=conversation.pk)
            .select_related("account")
            .order_by("-last_message_at")[:10]
        )
    cost = Message.objects.filter(org=org, conversation=conversation).aggregate(
        total=Sum("ai_cost")
    )["total"]
    analysed = (
        Message.objects.filter(
            org=org, conversation=conversation, direction=Message.Direction.INBOUND
        )
        .exclude(intent="", sentiment="")
        .order_by("-id")
        .values("intent", "sentiment", "sentiment_score", "created_at")
        .first()
    )

    def tag(t) -> dict:
        return {"id": t.id, "name": t.name, "color": t.color}

    return {
        "contact": {
            "id": contact.id if contact else 0,
            "wxid": contact.wxid if contact else "",
            "kind": contact.kind if contact else "",
            "nickname": contact.nickname if contact else "",
            "remark": contact.remark if contact else "",
            "avatar_url": contact.avatar_url if contact else "",
            "is_blocked": contact.is_blocked if contact else False,
        },
        "display_name": contact_display_name(contact),
        "alias": contact.alias if contact else "",
        "notes": (contact.attributes or {}).get("notes", "") if contact else "",
        "account": {"id": account.id, "name": account.name} if account else {},
        "tags": [tag(t) for t in tags],
        "all_tags": [tag(t) for t in all_tags],
        "previous_conversations": [
            {
                "id": c.id,
                "account_name": c.account.name if c.account else "",
                "status": c.status,
                "last_message_at": c.last_message_at,
            }
            for c in previous
        ],
        "ai_cost": str(cost or 0),
        "latest_analysis": analysed,
        "sections": panels.customer_sections(org=org, contact=contact),
        "admin_urls": {
            "conversation": reverse(
                "admin:conversations_conversation_change", args=[conversation.id]
            ),
            "contact": reverse("admin:wechat_accounts_contact_change", args=[contact.id])
            if contact
            else "",
        },
    }


def canned_reply_list(*, org: Organization, q: str | None = None) -> QuerySet[CannedReply]:
    qs = CannedReply.objects.filter(org=org)
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(shortcut__icontains=q) | Q(text__icontains=q))
    return qs


def conversation_get_for_ws(
    *, org: Organization, conversation_id: object, user=None, role: str | None = None
) -> Conversation | None:
    """The conversation a socket asks for, or None when it is missing, of another organisation,
    or the id is not a positive integer (the consumer answers all three the same way)."""
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        return None
    if conversation_id <= 0:
        return None
    return conversation_list(org=org, user=user, role=role).filter(id=conversation_id).first()


def message_list_changed_since(
    *,
    org: Organization,
    since: datetime | None = None,
    after_id: int | None = None,
    conversation_id: int | None = None,
    limit: int = 500,
    user=None,
    role: str | None = None,
) -> list[Message]:
    """Messages created or changed after ``since`` (or with an id above ``after_id``), oldest
    change first: what a reconnecting client missed. The database is the truth, pushes are hints.

    Returns at most ``limit + 1`` rows so the caller can tell whether more remain.
    """
    queryset = Message.objects.filter(org=org)
    if conversation_id is not None:
        queryset = queryset.filter(conversation_id=conversation_id)
    if not sees_all(org=org, user=user, role=role):
        queryset = queryset.filter(
            conversation__in=conversation_list(org=org, user=user, role=role).values("pk")
        )
    if since is not None:
        queryset = queryset.filter(Q(updated_at__gt=since) | Q(created_at__gt=since))
        order = ["updated_at", "id"]
    else:
        queryset = queryset.filter(id__gt=after_id or 0)
        order = ["id"]
    return list(queryset.order_by(*order)[: limit + 1])
