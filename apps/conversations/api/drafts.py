"""Copilot drafts over the API: list (``?conversation=``, ``?status=``), read, and the three
decisions ``send``, ``edit-send`` and ``discard`` (agents and above; see
``apps.conversations.drafts`` for who may decide and the never-twice rule)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.conversations import drafts
from apps.conversations.models import Draft
from apps.core.api.views import OrgScopedReadOnlyViewSet
from apps.core.exceptions import ApplicationError
from apps.orgs.models import Role


class DraftSerializer(serializers.ModelSerializer):
    class Meta:
        model = Draft
        fields = [
            "id",
            "conversation",
            "turn",
            "reply_to",
            "ai_app",
            "text",
            "sent_text",
            "mention_wxid",
            "mention_name",
            "status",
            "expires_at",
            "decided_at",
            "decided_by",
            "created_at",
        ]
        read_only_fields = fields


class DraftEditSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10000)


DRAFT_FILTERS = [
    OpenApiParameter(
        "conversation", {"type": "integer", "minimum": 0}, description="conversation id"
    ),
    OpenApiParameter("status", OpenApiTypes.STR, enum=Draft.Status.values),
]


@extend_schema_view(list=extend_schema(parameters=DRAFT_FILTERS))
class DraftViewSet(OrgScopedReadOnlyViewSet):
    queryset = Draft.objects.all()
    serializer_class = DraftSerializer
    action_roles = {"send": Role.AGENT, "edit_send": Role.AGENT, "discard": Role.AGENT}

    def scope_queryset(self, queryset):
        if self.action != "list":  # a draft's URL names it: the list's filters do not apply
            return queryset.order_by("-created_at", "-id")
        conversation = self.request.query_params.get("conversation")
        if conversation not in (None, ""):
            if not conversation.isdigit():
                raise ApplicationError(
                    _("Invalid filter."),
                    fields={"conversation": [_("A whole number is required.")]},
                )
            queryset = queryset.filter(conversation_id=int(conversation))
        status = self.request.query_params.get("status")
        if status:
            if status not in Draft.Status.values:
                raise ApplicationError(
                    _("Invalid filter."), fields={"status": [_("Unknown status.")]}
                )
            queryset = queryset.filter(status=status)
        return queryset.order_by("-created_at", "-id")

    def _reply(self, draft: Draft) -> Response:
        return Response(DraftSerializer(draft).data)

    @extend_schema(request=None, responses=DraftSerializer)
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        draft = self.get_object()
        return self._reply(drafts.send_draft(org=request.org, draft_id=draft.pk, user=request.user))

    @extend_schema(request=DraftEditSerializer, responses=DraftSerializer)
    @action(detail=True, methods=["post"], url_path="edit-send")
    def edit_send(self, request, pk=None):
        draft = self.get_object()
        data = DraftEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._reply(
            drafts.edit_and_send_draft(
                org=request.org,
                draft_id=draft.pk,
                user=request.user,
                text=data.validated_data["text"],
            )
        )

    @extend_schema(request=None, responses=DraftSerializer)
    @action(detail=True, methods=["post"])
    def discard(self, request, pk=None):
        draft = self.get_object()
        return self._reply(
            drafts.discard_draft(org=request.org, draft_id=draft.pk, user=request.user)
        )
