"""AI provider sessions (FastGPT chatId / Dify conversation_id) and their lifecycle.

One ``AISession`` per conversation, group member (empty in private chats) and AI app: seed
004's "per user and group" key. The AI turn asks ``session_for`` which provider conversation to
continue and reports the answer with ``session_touch``. ``sessions_lifecycle`` (beat, every
minute) moves sessions active -> idle -> expired and clears the provider id of expired ones, so
the next turn starts a new provider session. Group sessions expire after the organisation's
group idle time (default one hour), private ones after the session expiry (default 24 h).
"""

from __future__ import annotations

import time
import zlib
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.conversations import ai_settings
from apps.conversations.models import AISession, Conversation
from apps.orgs.models import Organization


def _expire_after(org, *, is_group: bool) -> int:
    if is_group:
        return ai_settings.group_session_idle_seconds(org)
    return ai_settings.session_expire_seconds(org)


def session_get(conversation: Conversation, *, member_wxid: str, ai_app) -> AISession | None:
    return AISession.objects.filter(
        org_id=conversation.org_id,
        conversation=conversation,
        member_wxid=member_wxid,
        ai_app=ai_app,
    ).first()


def session_for(
    conversation: Conversation, *, member_wxid: str, ai_app, now: datetime | None = None
) -> str | None:
    """The provider conversation id to continue, a new caller-chosen FastGPT chatId, or None
    (Dify starts a conversation itself; OpenAI-compatible apps have no session)."""
    if ai_app.provider == "openai":
        return None
    now = now or timezone.now()
    session = session_get(conversation, member_wxid=member_wxid, ai_app=ai_app)
    is_group = bool(member_wxid)
    if (
        session is not None
        and session.provider_conversation_id
        and session.state != AISession.State.EXPIRED
        and session.last_activity_at is not None
        and (now - session.last_activity_at).total_seconds()
        < _expire_after(conversation.org, is_group=is_group)
    ):
        return session.provider_conversation_id
    return new_provider_session_id(conversation, ai_app=ai_app, member_wxid=member_wxid)


def new_provider_session_id(
    conversation: Conversation, *, ai_app, member_wxid: str = ""
) -> str | None:
    """A fresh FastGPT chatId (caller-chosen, unique per app, < 250 chars); None for Dify."""
    if ai_app.provider != "fastgpt":
        return None
    member = f"-{zlib.crc32(member_wxid.encode()):08x}" if member_wxid else ""
    return f"sa-{conversation.org_id}-{conversation.pk}{member}-{int(time.time() * 1000)}"


def session_touch(
    conversation: Conversation,
    *,
    member_wxid: str,
    ai_app,
    provider_conversation_id: str | None,
    now: datetime | None = None,
) -> None:
    """Record a turn answered in this session (a new provider id starts a new session): one
    ``UPDATE`` when the session exists (its ``CASE`` reads the row's old provider id)."""
    now = now or timezone.now()
    provider_id = (provider_conversation_id or "")[:250]
    new_session = ~Q(provider_conversation_id=provider_id)
    rows = AISession.objects.filter(
        org_id=conversation.org_id,
        conversation=conversation,
        member_wxid=member_wxid,
        ai_app=ai_app,
    )
    for _attempt in range(2):
        if rows.update(
            started_at=Case(When(new_session, then=Value(now)), default=F("started_at")),
            turns=Case(When(new_session, then=Value(1)), default=F("turns") + 1),
            provider_conversation_id=provider_id,
            state=AISession.State.ACTIVE,
            last_activity_at=now,
            updated_at=now,
        ):
            return
        try:
            with transaction.atomic():
                AISession.objects.create(
                    org_id=conversation.org_id,
                    conversation=conversation,
                    member_wxid=member_wxid[:128],
                    ai_app=ai_app,
                    provider_conversation_id=provider_id,
                    state=AISession.State.ACTIVE,
                    started_at=now,
                    last_activity_at=now,
                    turns=1,
                )
                return
        except IntegrityError:
            continue  # created concurrently: update it on the next pass
    raise RuntimeError("could not record the AI session")  # pragma: no cover


def sessions_lifecycle_org(*, org: Organization, now: datetime | None = None) -> dict[str, int]:
    """Move the organisation's sessions to idle / expired by their last activity. Expired
    sessions lose their provider id: the next turn starts a new provider session."""
    now = now or timezone.now()
    idle_cut = now - timedelta(seconds=ai_settings.session_idle_seconds(org))
    private_cut = now - timedelta(seconds=ai_settings.session_expire_seconds(org))
    group_cut = now - timedelta(seconds=ai_settings.group_session_idle_seconds(org))
    sessions = AISession.objects.filter(org=org)
    expired = (
        sessions.exclude(state=AISession.State.EXPIRED)
        .filter(
            Q(member_wxid="", last_activity_at__lte=private_cut)
            | (~Q(member_wxid="") & Q(last_activity_at__lte=group_cut))
        )
        .update(state=AISession.State.EXPIRED, provider_conversation_id="", updated_at=now)
    )
    idle = sessions.filter(state=AISession.State.ACTIVE, last_activity_at__lte=idle_cut).update(
        state=AISession.State.IDLE, updated_at=now
    )
    return {"idle": idle, "expired": expired}
