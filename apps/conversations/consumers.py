"""Chat WebSocket endpoints.

``/ws/chat/``: every conversation of the active organisation (the inbox group) plus the
conversations the client joins (``join``/``leave``) for per-conversation detail such as typing.
``/ws/chat/session/<conversation_id>/``: one conversation; a conversation that is missing or of
another organisation closes the socket with 4404.

Client messages (besides ``ping``/``pong``/``auth``, see ``apps.core.ws``)::

    {"type": "join",      "data": {"conversation_id": 12}}          /ws/chat/ only
    {"type": "leave",     "data": {"conversation_id": 12}}          /ws/chat/ only
    {"type": "typing",    "data": {"conversation_id": 12, "is_typing": true}}
    {"type": "mark_read", "data": {"conversation_id": 12}}
    {"type": "sync",      "data": {"since": "2025-01-01T00:00:00Z"}}  or {"last_message_id": 99}

``sync`` answers ``{"type": "sync", "data": {"messages": [...], "has_more": bool,
"cursor": {"since": ..., "last_message_id": ...}}}`` read from the database; a client that
reconnects with ``?since=<ISO>`` gets the same ``sync`` event right after
``connection_established``. In the session endpoint ``conversation_id`` may be omitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from django.utils.translation import gettext as _

from apps.conversations import payloads, selectors, services
from apps.conversations.models import Conversation
from apps.conversations.org_prefs import sees_all
from apps.core import realtime
from apps.core.exceptions import NotFoundError
from apps.core.ws import ClientError, CloseCode, RealtimeConsumer, Refused


def _parse_since(value: Any) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ClientError("invalid", _('"since" must be an ISO-8601 timestamp.'))
    return make_aware(parsed) if is_naive(parsed) else parsed


def _parse_id(value: Any, name: str = "conversation_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ClientError("invalid", _('"%(name)s" must be an integer.') % {"name": name})
    try:
        number = int(value)
    except ValueError:
        raise ClientError("invalid", _('"%(name)s" must be an integer.') % {"name": name}) from None
    if number < 0:
        raise ClientError("invalid", _('"%(name)s" must be an integer.') % {"name": name})
    return number


@database_sync_to_async
def _conversation(org, conversation_id, user=None, role=None):
    return selectors.conversation_get_for_ws(
        org=org, conversation_id=conversation_id, user=user, role=role
    )


@database_sync_to_async
def _changed_messages(org, *, since, after_id, conversation_id, limit, user=None, role=None):
    rows = selectors.message_list_changed_since(
        org=org,
        since=since,
        after_id=after_id,
        conversation_id=conversation_id,
        limit=limit,
        user=user,
        role=role,
    )
    return [payloads.message_payload(m) for m in rows]


@database_sync_to_async
def _sees_all(org, user, role) -> bool:
    return sees_all(org=org, user=user, role=role)


@database_sync_to_async
def _assignee_of(org, conversation_id):
    """(exists, assignee_id) of a conversation of ``org``."""
    row = (
        Conversation.objects.filter(org=org, pk=conversation_id)
        .values_list("id", "assignee_id")
        .first()
    )
    return (True, row[1]) if row else (False, None)


def _event_conversation(event: dict[str, Any]) -> tuple[int | None, dict | None]:
    """The conversation an event is about: (id, the conversation payload when it carries one)."""
    data = event.get("data") or {}
    conversation = data.get("conversation")
    if isinstance(conversation, dict) and "id" in conversation:
        return conversation["id"], conversation
    for holder in (data, data.get("message"), data.get("note"), data.get("draft")):
        if isinstance(holder, dict) and isinstance(holder.get("conversation_id"), int):
            return holder["conversation_id"], None
    return None, None


@database_sync_to_async
def _mark_read(org, conversation_id, user):
    try:
        services.conversation_mark_read(org=org, conversation_id=conversation_id, user=user)
    except NotFoundError:
        return False
    return True


class _ChatBase(RealtimeConsumer):
    """What both chat endpoints share: typing relay, mark_read, catch-up, and the visibility
    rule: when the organisation lets agents see only their own and unassigned conversations,
    such a socket gets only those conversations' events (``conversation_removed`` when one it
    was shown is assigned to someone else)."""

    restricted = False

    async def authorize(self) -> None:
        self.restricted = not await _sees_all(self.org, self.user, self.membership.role)
        self._visible: dict[int, bool] = {}

    async def _conversation(self, conversation_id):
        return await _conversation(self.org, conversation_id, self.user, self.membership.role)

    def _visible_by_assignee(self, assignee_id) -> bool:
        return assignee_id is None or assignee_id == self.user.id

    def needs_lookup(self, message: dict[str, Any]) -> bool:
        """A restricted socket asks the database only about a conversation it has not seen
        and whose event does not say who it is assigned to."""
        if not (self.restricted and self.ready and not self.closing):
            return False
        if message.get("type") != realtime.CHANNEL_MESSAGE_TYPE:
            return False
        conversation_id, conversation = _event_conversation(message.get("event") or {})
        if conversation_id is None or conversation_id in self._visible:
            return False
        return not (conversation is not None and "assignee_id" in conversation)

    async def realtime_event(self, message: dict[str, Any]) -> None:
        if self.restricted and self.ready and not self.closing:
            event = message.get("event") or {}
            conversation_id, conversation = _event_conversation(event)
            if conversation_id is not None:
                known = self._visible.get(conversation_id)
                if conversation is not None and "assignee_id" in conversation:
                    visible = self._visible_by_assignee(conversation["assignee_id"])
                elif known is not None:
                    visible = known
                else:
                    exists, assignee_id = await _assignee_of(self.org, conversation_id)
                    visible = exists and self._visible_by_assignee(assignee_id)
                self._visible[conversation_id] = visible
                if not visible:
                    if known or (known is None and conversation is not None):
                        await self.send_event(
                            "conversation_removed", {"conversation_id": conversation_id}
                        )
                    return
        await super().realtime_event(message)

    def watched_conversation_ids(self) -> set[int]:
        raise NotImplementedError

    def _conversation_from(self, data: dict[str, Any]) -> int:
        raise NotImplementedError

    def sync_conversation_id(self) -> int | None:
        return None

    async def after_connect(self) -> None:
        since = self.query.get("since")
        last_id = self.query.get("last_message_id")
        if since or last_id:
            try:
                await self._send_sync({"since": since} if since else {"last_message_id": last_id})
            except ClientError as exc:
                await self.send_error(exc.code, exc.message)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["conversation_ids"] = sorted(self.watched_conversation_ids())
        return info

    async def handle_typing(self, data: dict[str, Any]) -> None:
        conversation_id = self._conversation_from(data)
        if conversation_id not in self.watched_conversation_ids():
            raise ClientError("not_joined", _("Join the conversation before typing in it."))
        await realtime.apush(
            "typing",
            {
                "conversation_id": conversation_id,
                "user_id": self.user.id,
                "name": self.user.get_full_name(),
                "is_typing": bool(data.get("is_typing", True)),
                # The workspace also says "I am looking at it" so two people don't answer.
                "viewing": bool(data.get("viewing", data.get("is_typing", True))),
            },
            groups=[realtime.group_for_conversation(self.org.id, conversation_id)],
            exclude_user_id=self.user.id,
        )

    async def handle_mark_read(self, data: dict[str, Any]) -> None:
        conversation_id = self._conversation_from(data)
        if not await _mark_read(self.org, conversation_id, self.user):
            raise ClientError("not_found", _("Conversation not found."))

    async def handle_sync(self, data: dict[str, Any]) -> None:
        await self._send_sync(data)

    async def _send_sync(self, data: dict[str, Any]) -> None:
        since = after_id = None
        if data.get("since") not in (None, ""):
            since = _parse_since(data["since"])
        else:
            raw = data.get("last_message_id", data.get("last_event_id"))
            if raw in (None, ""):
                raise ClientError("invalid", _('Send "since" (ISO-8601) or "last_message_id".'))
            after_id = _parse_id(raw, "last_message_id")
        limit = int(settings.WS_SYNC_LIMIT)
        messages = await _changed_messages(
            self.org,
            since=since,
            after_id=after_id,
            conversation_id=self.sync_conversation_id(),
            limit=limit,
            user=self.user,
            role=self.membership.role,
        )
        has_more = len(messages) > limit
        messages = messages[:limit]
        cursor = {}
        if messages:
            last = messages[-1]
            cursor = {"since": last["updated_at"], "last_message_id": last["id"]}
        await self.send_event(
            "sync", {"messages": messages, "has_more": has_more, "cursor": cursor}
        )


class ChatConsumer(_ChatBase):
    """``/ws/chat/``: the organisation's inbox; join/leave conversations for detail."""

    endpoint = "chat"

    async def connect(self) -> None:
        self.joined: set[int] = set()
        await super().connect()

    def watched_conversation_ids(self) -> set[int]:
        return set(self.joined)

    def _conversation_from(self, data: dict[str, Any]) -> int:
        if "conversation_id" not in data:
            raise ClientError("invalid", _('"conversation_id" is required.'))
        return _parse_id(data["conversation_id"])

    def initial_groups(self) -> list[str]:
        return [*super().initial_groups(), realtime.group_for_conversations(self.org.id)]

    async def handle_join(self, data: dict[str, Any]) -> None:
        conversation_id = self._conversation_from(data)
        if conversation_id not in self.joined:
            if len(self.joined) >= int(settings.WS_MAX_JOINED_CONVERSATIONS):
                raise ClientError("too_many_joined", _("Leave a conversation first."))
            conversation = await self._conversation(conversation_id)
            if conversation is None:
                raise ClientError("not_found", _("Conversation not found."))
            await self._add(realtime.group_for_conversation(self.org.id, conversation_id))
            self.joined.add(conversation_id)
            await self.refresh_lease()
        else:
            conversation = await self._conversation(conversation_id)
            if conversation is None:
                raise ClientError("not_found", _("Conversation not found."))
        await self.send_event(
            "session_joined", {"conversation": payloads.conversation_payload(conversation)}
        )

    async def handle_leave(self, data: dict[str, Any]) -> None:
        conversation_id = self._conversation_from(data)
        if conversation_id not in self.joined:
            raise ClientError("not_joined", _("This conversation was not joined."))
        self.joined.discard(conversation_id)
        await self._discard(realtime.group_for_conversation(self.org.id, conversation_id))
        await self.refresh_lease()
        await self.send_event("session_left", {"conversation_id": conversation_id})


class SessionConsumer(_ChatBase):
    """``/ws/chat/session/<conversation_id>/``: one conversation."""

    endpoint = "session"

    async def authorize(self) -> None:
        await super().authorize()
        raw = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.conversation = await self._conversation(raw)
        if self.conversation is None:
            raise Refused(CloseCode.NOT_FOUND)
        self.conversation_id = self.conversation.id

    def watched_conversation_ids(self) -> set[int]:
        conversation_id = getattr(self, "conversation_id", None)
        return {conversation_id} if conversation_id else set()

    def sync_conversation_id(self) -> int | None:
        return self.conversation_id

    def _conversation_from(self, data: dict[str, Any]) -> int:
        if data.get("conversation_id") in (None, ""):
            return self.conversation_id
        conversation_id = _parse_id(data["conversation_id"])
        if conversation_id != self.conversation_id:
            raise ClientError("not_joined", _("This socket serves another conversation."))
        return conversation_id

    def initial_groups(self) -> list[str]:
        return [
            *super().initial_groups(),
            realtime.group_for_conversation(self.org.id, self.conversation_id),
        ]

    async def after_connect(self) -> None:
        await self.send_event(
            "session_joined", {"conversation": payloads.conversation_payload(self.conversation)}
        )
        await super().after_connect()

    async def handle_join(self, data: dict[str, Any]) -> None:
        raise ClientError("not_supported", _("Use /ws/chat/ to switch conversations."))

    handle_leave = handle_join
