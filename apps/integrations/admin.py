"""Admin of the integrations app: connections and AI apps (secrets write-only, shown masked,
saved through the services) and the read-only call log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    INPUT_CLASSES,
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextInputWidget,
)

from apps.core.admin import OrgScopedAdmin
from apps.core.crypto import mask_secret
from apps.integrations import services
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.integrations.restart import services_restart

KEEP_HELP = _("Write-only. Leave blank to keep the stored value (currently %(masked)s).")


def _secret_input() -> forms.CharField:
    return forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"class": " ".join(INPUT_CLASSES)}),
    )


class _SecretFieldsForm(forms.ModelForm):
    """Secret fields never render their value; blank means "keep"."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            current = getattr(self.instance, name, "") if self.instance.pk else ""
            self.fields[name] = _secret_input()
            self.fields[name].label = self.instance._meta.get_field(name).verbose_name
            self.fields[name].help_text = KEEP_HELP % {"masked": mask_secret(current) or "—"}
            self.initial[name] = ""

    def _post_clean(self):
        # Blank secrets keep the stored value, so the model validation sees the real one.
        for name in self.secret_fields:
            if not self.cleaned_data.get(name) and self.instance.pk:
                self.cleaned_data[name] = getattr(self.instance, name)
        super()._post_clean()


class PlatformConnectionForm(_SecretFieldsForm):
    secret_fields = ("token", "password")
    capabilities = forms.MultipleChoiceField(
        choices=PlatformConnection.Capability.choices,
        required=False,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        label=_("capabilities"),
    )

    class Meta:
        model = PlatformConnection
        fields = [
            "org",
            "provider",
            "name",
            "base_url",
            "token",
            "account",
            "password",
            "capabilities",
            "extra",
            "status",
        ]


FLAVOR_CHOICES = [
    ("", _("From the address (DashScope when it says dashscope)")),
    ("openai", _("OpenAI")),
    ("dashscope", _("Alibaba Cloud DashScope (compatible mode)")),
]


class AIAppForm(_SecretFieldsForm):
    """The app's settings that live in ``extra`` (read by apps/integrations/services.py) get
    fields of their own, so nobody edits JSON to set them."""

    secret_fields = ("api_key",)
    max_tokens_variable = forms.CharField(
        required=False,
        max_length=64,
        widget=UnfoldAdminTextInputWidget,
        label=_("Output cap variable"),
        help_text=_(
            "FastGPT variable or Dify input that also receives the output token cap, for "
            "workflows that read it. Leave blank when the app does not use one."
        ),
    )
    flavor = forms.ChoiceField(
        required=False,
        choices=FLAVOR_CHOICES,
        widget=UnfoldAdminSelectWidget,
        label=_("OpenAI-compatible service"),
        help_text=_("How provider error codes are read (OpenAI-compatible apps only)."),
    )
    extra_keys = ("max_tokens_variable", "flavor")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        extra = self.instance.extra if isinstance(self.instance.extra, dict) else {}
        for name in self.extra_keys:
            value = extra.get(name)
            self.initial[name] = value if isinstance(value, str) else ""

    def clean_max_tokens_variable(self):
        value = self.cleaned_data.get("max_tokens_variable", "").strip()
        if value and not value.replace("_", "").replace("-", "").isalnum():
            raise forms.ValidationError(
                _("Use letters, digits, underscores or hyphens only."), code="invalid"
            )
        return value

    def clean(self):
        cleaned = super().clean()
        extra = cleaned.get("extra")
        extra = dict(extra) if isinstance(extra, dict) else {}
        for name in self.extra_keys:
            if cleaned.get(name):
                extra[name] = cleaned[name]
            else:
                extra.pop(name, None)
        cleaned["extra"] = extra
        return cleaned

    class Meta:
        model = AIApp
        fields = [
            "org",
            "provider",
            "name",
            "base_url",
            "api_key",
            "model",
            "app_id",
            "streaming",
            "temperature",
            "max_tokens",
            "max_tokens_variable",
            "flavor",
            "system_prompt",
            "purpose",
            "is_default",
            "enabled",
            "extra",
        ]


def _report(modeladmin, request, label: str, result) -> None:
    if result.ok:
        modeladmin.message_user(
            request,
            _("%(name)s: OK in %(ms)d ms. %(detail)s")
            % {"name": label, "ms": result.latency_ms, "detail": result.text or result.detail},
            messages.SUCCESS,
        )
    else:
        modeladmin.message_user(
            request,
            _("%(name)s: failed (%(error)s) after %(ms)d ms: %(detail)s")
            % {
                "name": label,
                "error": result.error_class,
                "ms": result.latency_ms,
                "detail": result.detail,
            },
            messages.ERROR,
        )


RESTART_STEPS = {
    "cache_cleared": _("cache cleared"),
    "callback_registered": _("callback registered again"),
    "callback_failed": _("callback registration failed"),
    "breaker_reset": _("circuit breaker closed"),
    "checked": _("checked live"),
}


def _restart(modeladmin, request, queryset, key: str) -> None:
    """Restart each selected integration through the same service as
    ``POST /api/v1/integrations/services/restart`` (audited), one message per target."""
    for obj in queryset.select_related("org"):
        for outcome in services_restart(org=obj.org, actor=request.user, **{key: obj.pk}):
            steps = "、".join(str(RESTART_STEPS.get(step, step)) for step in outcome.steps)
            values = {"name": outcome.name, "steps": steps, "ms": outcome.latency_ms or 0}
            if outcome.ok:
                text = _("%(name)s restarted and working (%(ms)d ms): %(steps)s.") % values
                modeladmin.message_user(request, text, messages.SUCCESS)
            else:
                values["detail"] = outcome.detail
                text = _("%(name)s restarted but not working: %(detail)s (%(steps)s).") % values
                modeladmin.message_user(request, text, messages.ERROR)


class _MaskedSecretsMixin:
    """Who may not change the row (managers, viewers) sees its secrets masked, never in clear:
    Django would render a read-only field's raw value."""

    secret_fields: tuple[str, ...] = ()
    # Read-only values that carry a secret (the webhook URL's token): masked the same way.
    secret_readonly: tuple[str, ...] = ()

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            hidden = (*self.secret_fields, *self.secret_readonly)
            fields = [f"masked_{n}" if n in hidden else n for n in fields]
        return list(dict.fromkeys(fields))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            fields = [f for f in fields if f not in self.secret_readonly]
            fields += [f"masked_{n}" for n in (*self.secret_fields, *self.secret_readonly)]
        return fields


@admin.register(PlatformConnection)
class PlatformConnectionAdmin(_MaskedSecretsMixin, OrgScopedAdmin):
    secret_fields = ("token", "password")
    secret_readonly = ("webhook_address",)
    form = PlatformConnectionForm
    list_display = [
        "name",
        "provider",
        "org",
        "status",
        "masked_token",
        "last_checked_at",
        "last_latency_ms",
    ]
    list_filter = ["provider", "status", "org"]
    search_fields = ["name", "base_url", "account"]
    list_select_related = ["org"]
    readonly_fields = ["webhook_address", "status_detail", "last_checked_at", "last_latency_ms"]
    actions = ["test_connections", "restart_connections", "rotate_webhook_secrets"]

    @admin.display(description=_("token"))
    def masked_token(self, obj: PlatformConnection) -> str:
        return mask_secret(obj.token)

    @admin.display(description=_("webhook URL"))
    def masked_webhook_address(self, obj: PlatformConnection) -> str:
        parts = obj.webhook_url.split("/")
        return "/".join(mask_secret(p) if len(p) >= 20 else p for p in parts)

    @admin.display(description=_("developer password"))
    def masked_password(self, obj: PlatformConnection) -> str:
        return mask_secret(obj.password) or "—"

    @admin.display(description=_("webhook URL"))
    def webhook_address(self, obj: PlatformConnection | None) -> str:
        # The add page has no saved connection (and maybe no provider) yet.
        if obj is None or obj.pk is None or not obj.provider:
            return _("Shown once the connection is saved.")
        return obj.webhook_url

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "provider"] if obj else fields

    def save_model(self, request, obj, form, change):
        data = {k: v for k, v in form.cleaned_data.items() if k in form.Meta.fields}
        if change:
            data.pop("org", None)
            data.pop("provider", None)
            saved = services.connection_update(
                org=obj.org, connection_id=obj.pk, actor=request.user, **data
            )
        else:
            data.pop("status", None)
            saved = services.connection_create(actor=request.user, **data)
        form.instance = saved
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.connection_delete(org=obj.org, connection_id=obj.pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("org"):
            self.delete_model(request, obj)

    @admin.action(description=_("Test the selected connections"))
    def test_connections(self, request, queryset):
        for connection in queryset.select_related("org"):
            result = services.connection_test(org=connection.org, connection_id=connection.id)
            _report(self, request, connection.name, result)

    @admin.action(
        description=_("Restart the selected connections (register the callback again, check)")
    )
    def restart_connections(self, request, queryset):
        _restart(self, request, queryset, "connection_id")

    @admin.action(description=_("Rotate the webhook secret of the selected connections"))
    def rotate_webhook_secrets(self, request, queryset):
        for connection in queryset.select_related("org"):
            services.connection_rotate_secret(
                org=connection.org, connection_id=connection.id, actor=request.user
            )
        self.message_user(
            request,
            _("New webhook URLs: tell the platforms (set callback) before they post again."),
            messages.WARNING,
        )


@admin.register(AIApp)
class AIAppAdmin(_MaskedSecretsMixin, OrgScopedAdmin):
    secret_fields = ("api_key",)
    form = AIAppForm
    list_display = [
        "name",
        "provider",
        "org",
        "purpose",
        "is_default",
        "enabled",
        "model",
        "masked_api_key",
        "last_check_ok",
        "last_checked_at",
    ]
    list_filter = ["provider", "purpose", "is_default", "enabled", "last_check_ok", "org"]
    search_fields = ["name", "model", "app_id", "base_url"]
    list_select_related = ["org"]
    readonly_fields = ["last_checked_at", "last_check_ok", "last_check_detail", "last_latency_ms"]
    actions = ["test_ai_apps", "restart_ai_apps"]

    @admin.display(description=_("API key"))
    def masked_api_key(self, obj: AIApp) -> str:
        return mask_secret(obj.api_key)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "provider"] if obj else fields

    def save_model(self, request, obj, form, change):
        # The extra-backed fields are already folded into ``extra`` by the form's clean.
        fields = set(form.Meta.fields) - set(form.extra_keys)
        data = {k: v for k, v in form.cleaned_data.items() if k in fields}
        if change:
            data.pop("org", None)
            data.pop("provider", None)
            saved = services.ai_app_update(
                org=obj.org, ai_app_id=obj.pk, actor=request.user, **data
            )
        else:
            saved = services.ai_app_create(actor=request.user, **data)
        form.instance = saved
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.ai_app_delete(org=obj.org, ai_app_id=obj.pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("org"):
            self.delete_model(request, obj)

    @admin.action(description=_("Test the selected AI apps (one real turn)"))
    def test_ai_apps(self, request, queryset):
        for ai_app in queryset.select_related("org"):
            result = services.ai_app_test(org=ai_app.org, ai_app_id=ai_app.id)
            _report(self, request, ai_app.name, result)

    @admin.action(description=_("Restart the selected AI apps (close the circuit breaker, check)"))
    def restart_ai_apps(self, request, queryset):
        _restart(self, request, queryset, "ai_app_id")


@admin.register(IntegrationCall)
class IntegrationCallAdmin(OrgScopedAdmin):
    """The call log is written by the clients only: read-only here."""

    list_display = [
        "at",
        "org",
        "service",
        "operation",
        "ok",
        "http_status",
        "error_class",
        "latency_ms",
        "attempt",
        "connection",
        "ai_app",
        "wechat_account_id",
    ]
    list_filter = ["service", "ok", "error_class", "http_status", "org"]
    search_fields = ["operation", "request_id", "error_class"]
    date_hierarchy = "at"
    list_select_related = ["org", "connection", "ai_app"]
    ordering = ["-at", "-id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in IntegrationCall._meta.fields]
