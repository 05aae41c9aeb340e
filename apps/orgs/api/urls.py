from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.orgs.api import views

router = SimpleRouter()
router.register("orgs/members", views.MembershipViewSet, basename="org-member")
router.register("orgs/invitations", views.InvitationViewSet, basename="org-invitation")

urlpatterns = [
    path("orgs/", views.MyOrganizationsViewSet.as_view({"get": "list"}), name="org-list"),
    path("orgs/current/", views.CurrentOrganizationView.as_view(), name="org-current"),
    path(
        "orgs/invitations/accept/",
        views.InvitationAcceptView.as_view(),
        name="org-invitation-accept",
    ),
    *router.urls,
]
