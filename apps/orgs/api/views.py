from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from apps.core.api.views import OrgScopedAPIView, OrgScopedGenericViewSet
from apps.core.utils import client_ip
from apps.orgs import selectors, services
from apps.orgs.api.serializers import (
    InvitationAcceptSerializer,
    InvitationCreatedSerializer,
    InvitationSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
)
from apps.orgs.models import Membership, Role


class MyOrganizationsViewSet(mixins.ListModelMixin, GenericViewSet):
    """The organisations the caller belongs to, with their role in each."""

    serializer_class = OrganizationSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.Organization.objects.none()
        return selectors.organization_list_for_user(user=self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["roles"] = dict(
                Membership.objects.filter(user=self.request.user).values_list("org_id", "role")
            )
        return context


class CurrentOrganizationView(OrgScopedAPIView):
    write_role = Role.ADMIN

    def _data(self, request, org):
        return OrganizationSerializer(
            org, context={"roles": {org.id: request.membership.role}}
        ).data

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request):
        return Response(self._data(request, request.org))

    @extend_schema(request=OrganizationUpdateSerializer, responses=OrganizationSerializer)
    def patch(self, request):
        serializer = OrganizationUpdateSerializer(request.org, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        org = services.organization_update(
            org=request.org, actor=request.user, **serializer.validated_data
        )
        return Response(self._data(request, org))


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet):
    """Members of the active organisation; owners and admins change roles and remove members."""

    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    write_role = Role.ADMIN
    filterset_fields = ["role"]
    search_fields = ["user__email", "user__name"]
    ordering_fields = ["created_at", "role"]

    @extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer)
    def partial_update(self, request, pk=None):
        self.get_object()  # 404 for another organisation's membership.
        serializer = MembershipRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            org=request.org,
            actor_membership=request.membership,
            membership_id=int(pk),
            role=serializer.validated_data["role"],
            ip=client_ip(request),
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request, pk=None):
        self.get_object()
        services.membership_remove(
            org=request.org,
            actor_membership=request.membership,
            membership_id=int(pk),
            ip=client_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet):
    """Invitations of the active organisation (owners and admins)."""

    queryset = selectors.Invitation.objects.select_related("invited_by")
    serializer_class = InvitationSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    search_fields = ["email"]
    ordering_fields = ["created_at", "expires_at"]

    @extend_schema(request=InvitationSerializer, responses={201: InvitationCreatedSerializer})
    def create(self, request):
        serializer = InvitationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.invitation_create(
            org=request.org,
            actor_membership=request.membership,
            email=serializer.validated_data["email"],
            # The role is optional in the schema: the model's default (agent) applies.
            role=serializer.validated_data.get("role", Role.AGENT),
        )
        data = InvitationCreatedSerializer(created.invitation).data
        data["token"] = created.token
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=InvitationSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        self.get_object()
        invitation = services.invitation_revoke(
            org=request.org, actor=request.user, invitation_id=int(pk)
        )
        return Response(InvitationSerializer(invitation).data)


class InvitationAcceptView(APIView):
    """Accept an invitation: signed in as the invitee, or anonymously with name and password."""

    permission_classes = [AllowAny]

    @extend_schema(request=InvitationAcceptSerializer, responses={201: MembershipSerializer})
    def post(self, request):
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        membership = services.invitation_accept(user=user, **serializer.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
