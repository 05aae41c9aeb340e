from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.api.serializers import (
    AuditEventSerializer,
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    OrganizationBriefSerializer,
    PasswordChangeSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from apps.accounts.models import AuditEvent
from apps.core.api.exceptions import error_response
from apps.core.api.views import OrgScopedGenericViewSet
from apps.core.utils import client_ip
from apps.orgs import services as orgs_services
from apps.orgs.models import Role


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterSerializer, responses={201: RegisterResponseSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = orgs_services.user_register(**serializer.validated_data, ip=client_ip(request))
        body = {
            "user": UserSerializer(result.user).data,
            "organization": OrganizationBriefSerializer(result.organization).data,
            **result.tokens,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer})
    def post(self, request):
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            tokens = services.user_login(
                **serializer.validated_data, ip=client_ip(request), request=request
            )
        except services.LoginThrottled as exc:
            return error_response(
                exc.code, exc.message, 429, headers={"Retry-After": str(exc.retry_after)}
            )
        return Response(tokens)


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=LogoutSerializer, responses={205: None})
    def post(self, request):
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_logout(
            user=request.user,
            refresh=serializer.validated_data["refresh"],
            ip=client_ip(request),
            access=request.auth,
        )
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = MeSerializer

    def get(self, request):
        return Response(MeSerializer(request.user).data)

    def patch(self, request):
        serializer = MeSerializer(request.user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(MeSerializer(user).data)


class PasswordChangeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=PasswordChangeSerializer,
        responses={200: inline_serializer("PasswordChanged", {"detail": serializers.CharField()})},
    )
    def post(self, request):
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_change_password(
            user=request.user, **serializer.validated_data, ip=client_ip(request)
        )
        return Response({"detail": _("Password changed.")})


class AuditEventViewSet(mixins.ListModelMixin, OrgScopedGenericViewSet):
    """The organisation's security audit log (owners and admins)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    read_role = Role.ADMIN
    filterset_fields = ["action"]
    ordering_fields = ["at"]

    def scope_queryset(self, queryset):
        return selectors.audit_event_list(org=self.request.org)
