"""WeChat accounts API: accounts + login/sync/send actions, contacts, tags, group members,
Moments, friend requests. Views parse, call a service or selector, and serialize."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api.views import OrgScopedGenericViewSet, OrgScopedReadOnlyViewSet, OrgScopedViewSet
from apps.core.exceptions import ApplicationError
from apps.orgs.models import Role
from apps.wechat_accounts import selectors, services
from apps.wechat_accounts.api import serializers as s
from apps.wechat_accounts.models import Contact, FriendRequest, MomentPost, Tag, WeChatAccount


def _csv_response(content: str, filename: str) -> HttpResponse:
    response = HttpResponse("\ufeff" + content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class WeChatAccountViewSet(OrgScopedViewSet):
    queryset = WeChatAccount.objects.select_related("connection", "owner")
    serializer_class = s.WeChatAccountSerializer
    write_role = Role.MANAGER
    action_roles = {"destroy": Role.ADMIN}

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.WeChatAccountUpdateSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        connection = data.pop("connection")
        name = data.pop("name")
        serializer.instance = services.account_create(
            org=self.request.org, connection=connection, name=name, **data
        )

    def perform_update(self, serializer):
        serializer.instance = services.account_update(
            org=self.request.org, account_id=serializer.instance.pk, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.account_delete(org=self.request.org, account_id=instance.pk)

    @extend_schema(request=None, responses={200: s.LoginSerializer})
    @action(detail=True, methods=["post"])
    def login(self, request, pk=None):
        account = self.get_object()
        info = services.account_login_start(org=request.org, account_id=account.pk)
        return Response(
            {"qr_image": info.qr_image, "uuid": info.uuid, "expires_in": info.expires_in}
        )

    @extend_schema(responses={200: s.LoginStatusSerializer})
    @action(detail=True, methods=["get"], url_path="login/status")
    def login_status(self, request, pk=None):
        account = self.get_object()
        return Response(services.account_login_status(org=request.org, account_id=account.pk))

    @extend_schema(request=None, responses={200: s.LoginSerializer})
    @action(detail=True, methods=["post"], url_path="confirm-login")
    def confirm_login(self, request, pk=None):
        account = self.get_object()
        info = services.account_confirm_login(org=request.org, account_id=account.pk)
        return Response({"qr_image": "", "uuid": info.uuid, "expires_in": info.expires_in})

    @extend_schema(request=None, responses={200: s.WeChatAccountSerializer})
    @action(detail=True, methods=["post"])
    def logout(self, request, pk=None):
        account = services.account_logout(org=request.org, account_id=self.get_object().pk)
        return Response(
            s.WeChatAccountSerializer(account, context=self.get_serializer_context()).data
        )

    @extend_schema(request=None, responses={200: s.WeChatAccountSerializer})
    @action(detail=True, methods=["post"])
    def reconnect(self, request, pk=None):
        account = services.account_reconnect(org=request.org, account_id=self.get_object().pk)
        return Response(
            s.WeChatAccountSerializer(account, context=self.get_serializer_context()).data
        )

    @extend_schema(request=None, responses={202: s.WeChatAccountSerializer})
    @action(detail=True, methods=["post"], url_path="sync-contacts")
    def sync_contacts(self, request, pk=None):
        account = services.account_sync_contacts_start(
            org=request.org, account_id=self.get_object().pk
        )
        return Response(
            s.WeChatAccountSerializer(account, context=self.get_serializer_context()).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(request=None, responses={200: s.OnlineCheckSerializer})
    @action(detail=True, methods=["post"], url_path="check-online")
    def check_online(self, request, pk=None):
        result = services.account_check_online(
            org_id=request.org.pk, account_id=self.get_object().pk
        )
        return Response({"status": result})

    @extend_schema(responses={200: s.StatusEventSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="status-events")
    def status_events(self, request, pk=None):
        qs = selectors.account_status_events(org=request.org, account_id=self.get_object().pk)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.StatusEventSerializer(page, many=True).data)


CONTACT_FILTERS = [
    OpenApiParameter("account", OpenApiTypes.INT, description="WeChat account id"),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=Contact.Kind.values),
    OpenApiParameter("tag", OpenApiTypes.INT, description="Tag id"),
    OpenApiParameter("search", OpenApiTypes.STR, description="nickname, remark, wxid, alias"),
]


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ApplicationError(
            _("Invalid filter."), fields={name: [_("A whole number is required.")]}
        ) from exc


def _choice_param(request, name: str, choices) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise ApplicationError(_("Invalid filter."), fields={name: [_("Unknown value.")]})
    return value


@extend_schema_view(list=extend_schema(parameters=CONTACT_FILTERS))
class ContactViewSet(mixins.UpdateModelMixin, OrgScopedReadOnlyViewSet):
    queryset = Contact.objects.all()
    serializer_class = s.ContactSerializer
    write_role = Role.AGENT

    def scope_queryset(self, queryset):
        request = self.request
        if self.action not in ("list", "export"):  # the list's filters do not apply
            return selectors.contact_list(org=request.org).prefetch_related("tags").order_by("id")
        filtered = selectors.contact_list(
            org=request.org,
            account_id=_int_param(request, "account"),
            kind=_choice_param(request, "kind", Contact.Kind.values),
            tag_id=_int_param(request, "tag"),
            search=request.query_params.get("search") or None,
        )
        return filtered.prefetch_related("tags").order_by("id")

    def perform_update(self, serializer):
        serializer.instance = services.contact_update(
            org=self.request.org, contact_id=serializer.instance.pk, **serializer.validated_data
        )

    @extend_schema(parameters=CONTACT_FILTERS, responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        return _csv_response(
            services.contacts_export_csv(queryset=self.get_queryset()), "contacts.csv"
        )

    @extend_schema(
        request={"multipart/form-data": s.CSVUploadSerializer},
        responses={200: s.ImportResultSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_csv(self, request):
        upload = s.CSVUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        account = None
        if upload.validated_data.get("account"):
            account = selectors.account_get(
                org=request.org, account_id=upload.validated_data["account"]
            )
        result = services.contacts_import_csv(
            org=request.org, data=upload.validated_data["file"].read(), account=account
        )
        return Response(vars(result))


class TagViewSet(OrgScopedViewSet):
    queryset = Tag.objects.all()
    serializer_class = s.TagSerializer
    write_role = Role.MANAGER

    def perform_create(self, serializer):
        serializer.instance = services.tag_create(org=self.request.org, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.tag_update(
            org=self.request.org, tag_id=serializer.instance.pk, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.tag_delete(org=self.request.org, tag_id=instance.pk)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        return _csv_response(services.tags_export_csv(queryset=self.get_queryset()), "tags.csv")

    @extend_schema(
        request={"multipart/form-data": s.CSVUploadSerializer},
        responses={200: s.ImportResultSerializer},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_csv(self, request):
        upload = s.CSVUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        result = services.tags_import_csv(
            org=request.org, data=upload.validated_data["file"].read()
        )
        return Response(vars(result))


class GroupViewSet(OrgScopedGenericViewSet):
    """Groups are contacts of kind group; their members are read here."""

    queryset = Contact.objects.filter(kind=Contact.Kind.GROUP)
    serializer_class = s.GroupMemberSerializer

    @extend_schema(responses={200: s.GroupMemberSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        group = self.get_object()
        qs = selectors.group_member_list(org=request.org, group_id=group.pk).order_by("id")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.GroupMemberSerializer(page, many=True).data)


class MomentViewSet(mixins.CreateModelMixin, OrgScopedReadOnlyViewSet):
    queryset = MomentPost.objects.select_related("account").prefetch_related("visible_tags")
    serializer_class = s.MomentSerializer
    write_role = Role.MANAGER

    def scope_queryset(self, queryset):
        account_id = _int_param(self.request, "account")
        return queryset.filter(account_id=account_id) if account_id else queryset

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.moment_create(
            org=self.request.org,
            account=data.pop("account"),
            visible_tags=data.pop("visible_tags", None),
            user=self.request.user,
            **data,
        )

    @extend_schema(request=None, responses={200: s.MomentSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        post = services.moment_cancel(org=request.org, moment_id=self.get_object().pk)
        return Response(s.MomentSerializer(post, context=self.get_serializer_context()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("account", OpenApiTypes.INT, required=True),
            OpenApiParameter("refresh", OpenApiTypes.BOOL),
        ],
        responses={200: s.TimelineItemSerializer(many=True)},
    )
    @action(detail=False, methods=["get"])
    def timeline(self, request):
        account_id = _int_param(request, "account")
        if account_id is None:
            raise ApplicationError(
                _("Invalid filter."), fields={"account": [_("This field is required.")]}
            )
        account = selectors.account_get(org=request.org, account_id=account_id)
        services.moments_timeline_refresh(
            org=request.org,
            account_id=account.pk,
            force=request.query_params.get("refresh") in ("1", "true"),
        )
        qs = selectors.timeline_list(org=request.org, account_id=account.pk)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.TimelineItemSerializer(page, many=True).data)


class FriendRequestViewSet(OrgScopedReadOnlyViewSet):
    queryset = FriendRequest.objects.select_related("account")
    serializer_class = s.FriendRequestSerializer
    write_role = Role.AGENT

    @extend_schema(request=None, responses={200: s.FriendRequestSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        result = services.friend_request_accept(
            org=request.org, request_id=self.get_object().pk, user=request.user
        )
        return Response(s.FriendRequestSerializer(result).data)

    @extend_schema(request=None, responses={200: s.FriendRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        result = services.friend_request_reject(
            org=request.org, request_id=self.get_object().pk, user=request.user
        )
        return Response(s.FriendRequestSerializer(result).data)
