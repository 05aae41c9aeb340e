"""Organisations (the tenants), memberships with roles, e-mail invitations, and the typed
organisation settings page (``apps.orgs.org_settings``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.admin import TabularInline

from apps.core.admin import OrgScopedAdmin
from apps.core.console import console_membership
from apps.core.exceptions import ApplicationError
from apps.orgs import services
from apps.orgs.models import Invitation, Membership, Organization
from apps.orgs.org_settings import OrgSettingsForm


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    """Members see their active organisation; admins and owners change it and its settings
    (typed form at ``settings/``). Creating and deleting organisations is the platform's."""

    org_field = "id"
    add_roles = ()
    delete_roles = ()
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["timezone"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["settings"]  # edited through the typed settings form
    inlines = [MembershipInline]

    def get_inlines(self, request, obj):
        return self.inlines if request.user.is_superuser else []

    def object_org_id(self, obj) -> int | None:
        return obj.id

    def get_urls(self):
        return [
            path(
                "settings/",
                self.admin_site.admin_view(self.settings_view),
                name="orgs_organization_settings",
            ),
            *super().get_urls(),
        ]

    def settings_view(self, request):
        """The active organisation's settings as one typed form."""
        membership = console_membership(request)
        if membership is None:
            raise PermissionDenied
        org = get_object_or_404(Organization, pk=membership.org_id)
        if not self.has_view_permission(request, org):
            raise PermissionDenied
        can_change = self.has_change_permission(request, org)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            form = OrgSettingsForm(request.POST, org=org)
            if form.is_valid():
                try:
                    services.organization_settings_update(
                        org=org, actor=request.user, values=form.cleaned_data
                    )
                except ValidationError as exc:
                    for key, errors in exc.message_dict.items():
                        form.add_error(key if key in form.fields else None, errors)
                else:
                    messages.success(request, _("The settings were saved."))
                    return HttpResponseRedirect(reverse("admin:orgs_organization_settings"))
        else:
            form = OrgSettingsForm(org=org)
        if not can_change:
            for field in form.fields.values():
                field.disabled = True
        context = {
            **self.admin_site.each_context(request),
            "title": _("Organisation settings"),
            "subtitle": org.name,
            "opts": self.model._meta,
            "org": org,
            "form": form,
            "media": self.media + form.media,
            "can_change": can_change,
        }
        return TemplateResponse(request, "admin/orgs/settings.html", context)


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    """Admins change roles and remove members; people join through invitations."""

    add_roles = ()
    list_display = ["user", "user_name", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not request.user.is_superuser:
            return ["user", "org"]
        return super().get_readonly_fields(request, obj)

    @admin.display(description=gettext_lazy("name"), ordering="user__name")
    def user_name(self, obj):
        return obj.user.name

    def _actor(self, request, obj) -> Membership:
        actor = Membership.objects.filter(org_id=obj.org_id, user=request.user).first()
        if actor is None:  # a superuser outside the organisation acts as its owner
            actor = Membership(org_id=obj.org_id, user=request.user, role="owner")
        return actor

    def save_model(self, request, obj, form, change):
        if not change or request.user.is_superuser and "role" not in form.changed_data:
            return super().save_model(request, obj, form, change)
        if "role" in form.changed_data:
            try:
                services.membership_change_role(
                    org=obj.org,
                    actor_membership=self._actor(request, obj),
                    membership_id=obj.pk,
                    role=obj.role,
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request, obj):
        try:
            services.membership_remove(
                org=obj.org, actor_membership=self._actor(request, obj), membership_id=obj.pk
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("org"):
            self.delete_model(request, obj)


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    """Invitations are created (and e-mailed) and revoked through the services."""

    list_display = ["email", "role", "status_label", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["org", "email", "role"]
        return ["email", "role", "expires_at", "accepted_at", "accepted_by", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class InvitationForm(form):
            def clean(self):
                # The service's rules as form errors (a page, not a crash).
                cleaned = super().clean()
                org, email = cleaned.get("org"), (cleaned.get("email") or "").strip()
                if (
                    org
                    and email
                    and Membership.objects.filter(org=org, user__email__iexact=email).exists()
                ):
                    self.add_error("email", _("This person is already a member."))
                actor = Membership.objects.filter(org=org, user=request.user).first()
                if cleaned.get("role") == "owner" and actor and actor.role != "owner":
                    self.add_error("role", _("Only an owner can invite another owner."))
                return cleaned

        return InvitationForm

    def save_model(self, request, obj, form, change):
        actor = Membership.objects.filter(org_id=obj.org_id, user=request.user).first()
        if actor is None:
            actor = Membership(org_id=obj.org_id, user=request.user, role="owner")
        created = services.invitation_create(
            org=obj.org, actor_membership=actor, email=obj.email, role=obj.role
        )
        obj.pk = created.invitation.pk

    @admin.action(
        description=gettext_lazy("Revoke the selected invitations"), permissions=["delete"]
    )
    def revoke(self, request, queryset):
        for invitation in queryset.select_related("org"):
            try:
                services.invitation_revoke(
                    org=invitation.org, actor=request.user, invitation_id=invitation.pk
                )
            except ApplicationError as exc:
                self.message_user(request, f"{invitation.email}: {exc.message}", messages.WARNING)

    @admin.display(description=gettext_lazy("status"))
    def status_label(self, obj):
        return Invitation.Status(obj.status).label
