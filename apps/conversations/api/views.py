"""The agent inbox API: conversations (filters, search, actions), their messages (cursor
pages, agent replies through the outbound pipeline) and canned replies."""

from __future__ import annotations

from datetime import UTC

from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.accounts.models import User
from apps.conversations import selectors, services
from apps.conversations.api import serializers as s
from apps.conversations.api.pagination import ConversationPagination
from apps.conversations.models import CannedReply, Conversation
from apps.conversations.workspace import services as workspace_services
from apps.core.api.pagination import CursorPagination
from apps.core.api.views import OrgScopedReadOnlyViewSet, OrgScopedViewSet
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.orgs.models import Role


class MessageCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


def _invalid(name: str, message: str) -> ApplicationError:
    return ApplicationError(_("Invalid filter."), fields={name: [message]})


def _int(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise _invalid(name, _("A whole number is required."))
    return int(value)


_STATUS_NAMES = "|".join(Conversation.Status.values)
_STATUS_LIST = rf"^(({_STATUS_NAMES})(,({_STATUS_NAMES}))*)?$"
INBOX_FILTERS = [
    OpenApiParameter(
        "status",
        {"type": "string", "pattern": _STATUS_LIST},
        description="open, pending, resolved, snoozed (comma-separated)",
    ),
    OpenApiParameter("mode", OpenApiTypes.STR, enum=Conversation.Mode.values),
    OpenApiParameter("assignee", OpenApiTypes.STR, description="user id, me or none"),
    OpenApiParameter("account", {"type": "integer", "minimum": 0}, description="WeChat account id"),
    OpenApiParameter("label", OpenApiTypes.STR, description="label id or name"),
    OpenApiParameter("unread", OpenApiTypes.BOOL),
    OpenApiParameter("updated_since", OpenApiTypes.DATETIME),
    OpenApiParameter("q", OpenApiTypes.STR, description="search message text and contact names"),
    OpenApiParameter(
        "view",
        OpenApiTypes.STR,
        enum=list(selectors.INBOX_VIEWS),
        description="workspace view: mine, unassigned, waiting (oldest first), ai, resolved, all",
    ),
]


def _role(request) -> str | None:
    membership = getattr(request, "membership", None)
    return membership.role if membership is not None else None


@extend_schema_view(list=extend_schema(parameters=INBOX_FILTERS))
class ConversationViewSet(mixins.UpdateModelMixin, OrgScopedReadOnlyViewSet):
    queryset = Conversation.objects.all()
    serializer_class = s.ConversationSerializer
    pagination_class = ConversationPagination
    write_role = Role.AGENT
    http_method_names = ["get", "post", "patch", "head", "options"]

    def scope_queryset(self, queryset):
        request = self.request
        params = request.query_params
        role = _role(request)
        if self.action != "list":
            return selectors.conversation_inbox(org=request.org, user=request.user, role=role)
        view = params.get("view") or None
        if view and view not in selectors.INBOX_VIEWS:
            raise _invalid("view", _("Unknown view."))
        statuses = params.get("status") or ""
        for value in filter(None, statuses.split(",")):
            if value not in Conversation.Status.values:
                raise _invalid("status", _("Unknown status."))
        mode = params.get("mode") or None
        if mode and mode not in Conversation.Mode.values:
            raise _invalid("mode", _("Use ai or human."))
        assignee = params.get("assignee") or None
        if assignee and assignee not in ("me", "none") and not assignee.isdigit():
            raise _invalid("assignee", _("Use a user id, me or none."))
        unread = params.get("unread")
        unread_value = None
        if unread not in (None, ""):
            if unread.lower() not in ("true", "false", "1", "0"):
                raise _invalid("unread", _("Use true or false."))
            unread_value = unread.lower() in ("true", "1")
        since = None
        if params.get("updated_since"):
            try:
                since = parse_datetime(params["updated_since"])
                # An offset of +99:00 matches the pattern but names no time zone; year 9999
                # with a negative offset overflows once converted to UTC.
                if since is not None and since.utcoffset() is not None:
                    since - since.utcoffset()  # noqa: B018 - raises OverflowError
            except (ValueError, OverflowError):
                since = None
            if since is None:
                raise _invalid("updated_since", _("Use an ISO-8601 date and time."))
            # In UTC: PostgreSQL refuses offsets beyond +-15:59 that ISO-8601 allows (-22:37).
            since = (make_aware(since) if is_naive(since) else since).astimezone(UTC)
        return selectors.conversation_inbox(
            org=request.org,
            user=request.user,
            role=role,
            view=view,
            status=statuses or None,
            mode=mode,
            assignee=assignee,
            account_id=_int(request, "account"),
            label=params.get("label") or None,
            unread=unread_value,
            updated_since=since,
            q=(params.get("q") or "").strip() or None,
            list_rows=True,
        )

    def _reply(self, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(
            org=self.request.org,
            conversation_id=conversation_id,
            user=self.request.user,
            role=_role(self.request),
        )
        if conversation is None:  # assigned away from an agent who sees only their own
            raise NotFoundError(_("Conversation not found."))
        return Response(
            s.ConversationSerializer(conversation, context=self.get_serializer_context()).data
        )

    @extend_schema(request=s.ConversationUpdateSerializer, responses=s.ConversationSerializer)
    def partial_update(self, request, *args, **kwargs):
        conversation = self.get_object()
        data = s.ConversationUpdateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        data.is_valid(raise_exception=True)
        services.conversation_update(
            org=request.org, conversation_id=conversation.pk, **data.validated_data
        )
        return self._reply(conversation.pk)

    def update(self, request, *args, **kwargs):  # PUT is not offered
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("cursor", OpenApiTypes.STR)],
        responses=s.MessageSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"], request=s.AgentReplySerializer, responses={202: s.MessageSerializer}
    )
    @action(detail=True, methods=["get", "post"], pagination_class=MessageCursorPagination)
    def messages(self, request, pk=None):
        conversation = self.get_object()
        if request.method == "GET":
            qs = selectors.message_list(org=request.org, conversation_id=conversation.pk)
            page = self.paginate_queryset(qs)
            return self.get_paginated_response(s.MessageSerializer(page, many=True).data)
        # The context carries the organisation: ``media`` only accepts its files.
        data = s.AgentReplySerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        v = data.validated_data
        message = services.agent_reply(
            org=request.org,
            conversation_id=conversation.pk,
            user=request.user,
            text=v["text"],
            kind=v["kind"],
            url=v["url"],
            file_name=v["file_name"],
            title=v["title"],
            canned_reply_id=v["canned_reply"],
            client_msg_id=v["client_msg_id"],
            media_file=v["media"],
            duration_s=v["duration_s"],
        )
        message.refresh_from_db()
        return Response(s.MessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses=s.ViewCountsSerializer,
        parameters=[],
        summary="How many conversations each workspace view holds",
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def counts(self, request):
        counts = selectors.conversation_view_counts(
            org=request.org, user=request.user, role=_role(request)
        )
        return Response(counts)

    @extend_schema(methods=["GET"], parameters=[], responses=s.NoteSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=s.NoteCreateSerializer, responses={201: s.NoteSerializer}
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def notes(self, request, pk=None):
        conversation = self.get_object()
        if request.method == "GET":
            notes = selectors.note_list(org=request.org, conversation_id=conversation.pk)
            return Response(s.NoteSerializer(notes, many=True).data)
        data = s.NoteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = workspace_services.note_create(
            org=request.org,
            conversation_id=conversation.pk,
            user=request.user,
            role=_role(request),
            text=data.validated_data["text"],
        )
        return Response(s.NoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def takeover(self, request, pk=None):
        """接管: a person works the conversation now; the AI stays silent until handed back."""
        conversation = self.get_object()
        services.conversation_take_over(
            org=request.org, conversation_id=conversation.pk, user=request.user
        )
        return self._reply(conversation.pk)

    @extend_schema(request=None, responses={202: s.MessageSerializer})
    @action(detail=True, methods=["post"], url_path=r"messages/(?P<message_id>\d+)/resend")
    def resend(self, request, pk=None, message_id=None):
        """Send a failed message again (a new message; the failed one stays as the record)."""
        conversation = self.get_object()
        message = workspace_services.message_resend(
            org=request.org, message_id=int(message_id), user=request.user, role=_role(request)
        )
        if message.conversation_id != conversation.pk:
            raise NotFoundError(_("Message not found."))
        message.refresh_from_db()
        return Response(s.MessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=s.CustomerPanelSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def customer(self, request, pk=None):
        """The workspace's customer pane: the contact, tags, account, previous conversations,
        this conversation's AI cost, and sections other apps add (SOP enrolments)."""
        conversation = self.get_object()
        return Response(
            selectors.customer_panel(org=request.org, conversation=conversation, user=request.user)
        )

    @extend_schema(request=s.HandoffSerializer, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def handoff(self, request, pk=None):
        conversation = self.get_object()
        data = s.HandoffSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.conversation_handoff(
            org=request.org,
            conversation_id=conversation.pk,
            mode=data.validated_data["mode"],
            reason=services.HandoffReason.AGENT,
            user=request.user,
        )
        return self._reply(conversation.pk)

    @extend_schema(request=s.AssignSerializer, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        conversation = self.get_object()
        data = s.AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_id = data.validated_data["assignee"]
        assignee = None
        if user_id is not None:
            assignee = User.objects.filter(pk=user_id, memberships__org=request.org).first()
            if assignee is None:
                raise ApplicationError(
                    _("Invalid data."), fields={"assignee": [_("Unknown user.")]}
                )
        services.conversation_assign(
            org=request.org, conversation_id=conversation.pk, assignee=assignee
        )
        return self._reply(conversation.pk)

    @extend_schema(request=None, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        conversation = self.get_object()
        services.conversation_resolve(org=request.org, conversation_id=conversation.pk)
        return self._reply(conversation.pk)

    @extend_schema(request=None, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        conversation = self.get_object()
        services.conversation_reopen(org=request.org, conversation_id=conversation.pk)
        return self._reply(conversation.pk)

    @extend_schema(request=s.SnoozeSerializer, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        conversation = self.get_object()
        data = s.SnoozeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.conversation_snooze(
            org=request.org, conversation_id=conversation.pk, until=data.validated_data["until"]
        )
        return self._reply(conversation.pk)

    @extend_schema(request=s.LabelsSerializer, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"])
    def labels(self, request, pk=None):
        conversation = self.get_object()
        data = s.LabelsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.conversation_set_labels(
            org=request.org, conversation_id=conversation.pk, names=data.validated_data["labels"]
        )
        return self._reply(conversation.pk)

    @extend_schema(request=None, responses=s.ConversationSerializer)
    @action(detail=True, methods=["post"], url_path="mark-read")
    def mark_read(self, request, pk=None):
        conversation = self.get_object()
        services.conversation_mark_read(
            org=request.org, conversation_id=conversation.pk, user=request.user
        )
        return self._reply(conversation.pk)


class CannedReplyViewSet(OrgScopedViewSet):
    queryset = CannedReply.objects.all()
    serializer_class = s.CannedReplySerializer
    write_role = Role.AGENT

    def scope_queryset(self, queryset):
        q = (self.request.query_params.get("q") or "").strip()
        return selectors.canned_reply_list(org=self.request.org, q=q or None) if q else queryset

    def perform_create(self, serializer):
        serializer.instance = services.canned_reply_create(
            org=self.request.org, user=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.canned_reply_update(
            org=self.request.org,
            canned_reply_id=serializer.instance.pk,
            **serializer.validated_data,
        )

    def perform_destroy(self, instance):
        services.canned_reply_delete(org=self.request.org, canned_reply_id=instance.pk)

    @extend_schema(request=s.CannedReplyRenderSerializer, responses=s.RenderedSerializer)
    @action(detail=True, methods=["post"], url_path="render")
    def render_text(self, request, pk=None):
        canned = self.get_object()
        data = s.CannedReplyRenderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = (
            Conversation.objects.select_related("contact", "account")
            .filter(org=request.org, pk=data.validated_data["conversation"])
            .first()
        )
        if conversation is None:
            raise NotFoundError(_("Conversation not found."))
        text = services.render_template(canned.text, conversation=conversation, user=request.user)
        return Response({"text": text})
