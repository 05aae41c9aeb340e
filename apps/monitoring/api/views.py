import time

import django_filters
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core import ws_registry
from apps.core.api.views import OrgScopedAPIView, OrgScopedGenericViewSet, OrgScopedViewSet
from apps.core.exceptions import NotFoundError
from apps.core.redis import get_redis
from apps.core.ws import CLOSE_CODES
from apps.monitoring import selectors, services
from apps.monitoring.api import serializers as s
from apps.monitoring.models import Notification, NotificationWebhook
from apps.orgs.models import Membership, Role


class NotificationFilter(django_filters.FilterSet):
    # The shared strict backend refuses anything but true/false (never read as "no filter").
    unread = django_filters.BooleanFilter(
        field_name="read_at",
        lookup_expr="isnull",
        label=gettext_lazy("Only unread (true) or read (false)."),
    )

    class Meta:
        model = Notification
        fields = ["type", "category", "unread"]


class NotificationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet
):
    """The caller's own notifications in the active organisation."""

    queryset = Notification.objects.all()
    serializer_class = s.NotificationSerializer
    read_role = Role.VIEWER
    write_role = Role.VIEWER
    filterset_class = NotificationFilter
    ordering_fields = ["created_at"]

    def scope_queryset(self, queryset):
        return queryset.filter(user=self.request.user)

    @extend_schema(request=None, responses=s.NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        try:
            notification_id = int(pk)
        except (TypeError, ValueError):
            raise NotFoundError(_("Notification not found.")) from None
        notification = services.notification_mark_read(
            org=request.org, user=request.user, notification_id=notification_id
        )
        return Response(s.NotificationSerializer(notification).data)

    @extend_schema(request=None, responses=s.MarkAllReadResultSerializer)
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        count = services.notification_mark_all_read(org=request.org, user=request.user)
        return Response({"updated": count})

    @extend_schema(responses=s.UnreadCountSerializer)
    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request):
        unread = selectors.notification_list(org=request.org, user=request.user, unread=True)
        return Response({"unread": unread.count()})


class NotificationWebhookViewSet(OrgScopedViewSet):
    """The organisation's outgoing notification robots (owners and admins)."""

    queryset = NotificationWebhook.objects.all()
    serializer_class = s.NotificationWebhookSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    search_fields = ["name"]
    filterset_fields = ["kind", "is_active"]


# --- the WebSocket management API (owners and admins, the active organisation only) -------------


class _WSView(OrgScopedAPIView):
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def member_or_404(self, user_id) -> Membership:
        membership = (
            Membership.objects.select_related("user")
            .filter(org=self.request.org, user_id=user_id)
            .first()
        )
        if membership is None:
            raise NotFoundError(_("User not found."))
        return membership

    def paginated(self, rows, serializer_class):
        paginator = self.pagination_class() if self.pagination_class else None
        if paginator is None:
            return Response(serializer_class(rows, many=True).data)
        page = paginator.paginate_queryset(rows, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)

    @property
    def pagination_class(self):
        from django.conf import settings
        from django.utils.module_loading import import_string

        return import_string(settings.REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"])


class WSStatsView(_WSView):
    @extend_schema(responses=s.WSStatsSerializer, summary=_("WebSocket statistics"))
    def get(self, request):
        return Response(selectors.ws_stats(org_id=request.org.id))


class WSConnectionsView(_WSView):
    @extend_schema(
        responses=s.WSConnectionSerializer(many=True), summary=_("Live WebSocket connections")
    )
    def get(self, request):
        rows = ws_registry.connections_for_org(request.org.id)
        return self.paginated(rows, s.WSConnectionSerializer)


class WSUserConnectionsView(_WSView):
    @extend_schema(
        responses=s.WSConnectionSerializer(many=True), summary=_("A user's live connections")
    )
    def get(self, request, user_id: int):
        self.member_or_404(user_id)
        rows = ws_registry.connections_for_org(request.org.id, user_id=user_id)
        return self.paginated(rows, s.WSConnectionSerializer)


class WSOnlineUsersView(_WSView):
    @extend_schema(responses=s.WSOnlineUserSerializer(many=True), summary=_("Online users"))
    def get(self, request):
        counts: dict[int, int] = {}
        for info in ws_registry.connections_for_org(request.org.id):
            counts[info["user_id"]] = counts.get(info["user_id"], 0) + 1
        online = set(ws_registry.online_user_ids(request.org.id)) | set(counts)
        memberships = (
            Membership.objects.select_related("user")
            .filter(org=request.org, user_id__in=online)
            .order_by("user_id")
        )
        rows = [
            {
                "user_id": m.user_id,
                "email": m.user.email,
                "name": m.user.get_full_name(),
                "role": m.role,
                "connections": counts.get(m.user_id, 0),
            }
            for m in memberships
        ]
        return self.paginated(rows, s.WSOnlineUserSerializer)


class WSHealthView(_WSView):
    @extend_schema(responses=s.WSHealthSerializer, summary=_("WebSocket layer health"))
    def get(self, request):
        redis_check = _timed(lambda: get_redis().ping())
        layer_check = _timed(_channel_layer_round_trip)
        return Response(
            {
                "ok": redis_check["ok"] and layer_check["ok"],
                "redis": redis_check,
                "channel_layer": layer_check,
                "close_codes": {str(code): text for code, text in CLOSE_CODES.items()},
            }
        )


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _channel_layer_round_trip() -> None:
    """Send a message to a fresh channel through the layer and read it back."""
    import asyncio

    layer = get_channel_layer()

    async def round_trip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.check"})
        await asyncio.wait_for(layer.receive(channel), timeout=2)

    async_to_sync(round_trip)()


class WSBroadcastView(_WSView):
    @extend_schema(
        request=s.WSBroadcastSerializer,
        responses={202: s.WSActionResultSerializer},
        summary=_("Broadcast a transient notification to every socket of the organisation"),
    )
    def post(self, request):
        serializer = s.WSBroadcastSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sent = services.ws_broadcast(org=request.org, **serializer.validated_data)
        connections = len(ws_registry.connections_for_org(request.org.id))
        return Response({"sent": sent, "connections": connections}, status=status.HTTP_202_ACCEPTED)


class WSDisconnectView(_WSView):
    @extend_schema(
        request=s.WSDisconnectSerializer,
        responses={202: s.WSActionResultSerializer},
        summary=_("Close a user's sockets (close code 4000)"),
    )
    def post(self, request):
        serializer = s.WSDisconnectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_id = serializer.validated_data["user_id"]
        self.member_or_404(user_id)
        connection_id = serializer.validated_data["connection_id"]
        rows = ws_registry.connections_for_org(request.org.id, user_id=user_id)
        if connection_id:
            rows = [r for r in rows if r["connection_id"] == connection_id]
            if not rows:
                raise NotFoundError(_("Connection not found."))
        sent = services.ws_disconnect_user(
            org=request.org, user_id=user_id, connection_id=connection_id
        )
        return Response({"sent": sent, "connections": len(rows)}, status=status.HTTP_202_ACCEPTED)


class WSNotifyView(_WSView):
    @extend_schema(
        request=s.WSNotifySerializer,
        responses={201: s.WSNotifyResultSerializer},
        summary=_("Store and push a notification to members"),
    )
    def post(self, request):
        serializer = s.WSNotifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user_ids = set(data["user_ids"])
        members = set(
            Membership.objects.filter(org=request.org, user_id__in=user_ids).values_list(
                "user_id", flat=True
            )
        )
        if user_ids - members:
            raise serializers.ValidationError({"user_ids": [_("Unknown user ids.")]})
        notifications = services.notify(
            org=request.org,
            users=sorted(user_ids),
            roles=data["roles"],
            type=data["type"],
            title=data["title"],
            message=data["message"],
            action_url=data["action_url"],
            category="manual",
            data={"sent_by": request.user.id},
        )
        return Response(
            {"notified": len(notifications), "notification_ids": [n.id for n in notifications]},
            status=status.HTTP_201_CREATED,
        )


class WSPingView(_WSView):
    @extend_schema(
        request=None,
        responses={202: s.WSActionResultSerializer},
        summary=_("Send a ping event to a user's sockets"),
    )
    def post(self, request, user_id: int):
        self.member_or_404(user_id)
        sent = services.ws_ping_user(org=request.org, user_id=user_id)
        connections = len(ws_registry.connections_for_org(request.org.id, user_id=user_id))
        return Response({"sent": sent, "connections": connections}, status=status.HTTP_202_ACCEPTED)
