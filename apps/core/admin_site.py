"""The console: Django's admin with the unfold theme, open to every active member.

- Sign-in: an active user with a membership (any role) or a superuser; no ``is_staff`` flag.
- The active organisation comes from ``apps.core.console`` (session); a user in several
  organisations switches it in the header (``console_switch_org``).
- What each role sees is decided by ``OrgScopedAdmin`` (apps/core/admin.py), in one place.
- ``console_search``: the scoped search behind the console's pickers (contacts ...), for any
  registered model whose admin the user may view, through that admin's own queryset.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from unfold.forms import AuthenticationForm
from unfold.sites import UnfoldAdminSite

from apps.core.console import console_membership, console_memberships, console_switch
from apps.orgs.models import Role

SEARCH_PAGE_SIZE = 20


class ConsoleLoginForm(AuthenticationForm):
    """The admin's login without its ``is_staff`` rule: an active member of an organisation
    (or a superuser) signs in."""

    def confirm_login_allowed(self, user):
        if not user.is_active:
            raise forms.ValidationError(self.error_messages["inactive"], code="inactive")
        if not user.is_superuser and not user.memberships.exists():
            raise forms.ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class ConsoleAdminSite(UnfoldAdminSite):
    login_form = ConsoleLoginForm

    site_header = gettext_lazy("AI Sales Assistant")
    site_title = gettext_lazy("AI Sales Assistant")
    index_title = gettext_lazy("Home")

    def has_permission(self, request) -> bool:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return False
        membership = console_membership(request)
        return user.is_superuser or membership is not None

    def each_context(self, request):
        context = super().each_context(request)
        membership = console_membership(request) if request.user.is_authenticated else None
        context.update(
            {
                "console_membership": membership,
                "console_org": membership.org if membership else None,
                "console_role_label": Role(membership.role).label if membership else "",
                "console_orgs": [m.org for m in console_memberships(request.user)]
                if request.user.is_authenticated
                else [],
            }
        )
        return context

    def get_urls(self):
        return [
            path(
                "switch-org/",
                self.admin_view(require_POST(self.switch_org_view)),
                name="console_switch_org",
            ),
            path("console-search/", self.admin_view(self.search_view), name="console_search"),
            path(
                "dashboard/cards/",
                self.admin_view(self.dashboard_cards_view),
                name="console_dashboard_cards",
            ),
            *super().get_urls(),
        ]

    def switch_org_view(self, request):
        try:
            org_id = int(request.POST.get("org", ""))
        except ValueError:
            org_id = 0
        membership = console_switch(request, org_id)
        if membership is None:
            raise Http404  # not a member: as if the organisation did not exist
        messages.success(
            request, _("You are now working in %(org)s.") % {"org": membership.org.name}
        )
        target = request.POST.get("next") or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("admin:index")
        # Another organisation's object would answer 404: go to the list or the home page.
        if "/change/" in target or target.rstrip("/").split("/")[-1].isdigit():
            target = reverse("admin:index")
        return HttpResponseRedirect(target)

    def dashboard_cards_view(self, request):
        # The home page lives in the top layer (it reads every app); the kernel knows it only
        # by the dotted path in settings, like unfold's DASHBOARD_CALLBACK.
        return import_string(settings.CONSOLE_DASHBOARD_CARDS_VIEW)(request)

    def search_view(self, request):
        """select2's protocol: ?term=&page=&app_label=&model_name= -> results/pagination."""
        from django.apps import apps

        try:
            model = apps.get_model(request.GET.get("app_label", ""), request.GET.get("model_name"))
        except (LookupError, ValueError, TypeError) as exc:
            raise Http404 from exc
        model_admin = self._registry.get(model)
        if model_admin is None or not model_admin.has_view_permission(request):
            raise Http404
        queryset = model_admin.get_queryset(request)
        term = request.GET.get("term", "").strip()
        if term:
            queryset, _dupes = model_admin.get_search_results(request, queryset, term)
            queryset = queryset.distinct()
        try:
            page = max(1, int(request.GET.get("page", "1")))
        except ValueError:
            page = 1
        start = (page - 1) * SEARCH_PAGE_SIZE
        rows = list(queryset.order_by("pk")[start : start + SEARCH_PAGE_SIZE + 1])
        return JsonResponse(
            {
                "results": [{"id": str(r.pk), "text": str(r)} for r in rows[:SEARCH_PAGE_SIZE]],
                "pagination": {"more": len(rows) > SEARCH_PAGE_SIZE},
            }
        )
