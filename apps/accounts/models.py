"""Users (e-mail login) and the security audit log."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an e-mail address; may belong to several organisations."""

    email = models.EmailField(_("e-mail"), unique=True)
    name = models.CharField(_("display name"), max_length=150, blank=True)
    default_org = models.ForeignKey(
        "orgs.Organization",
        verbose_name=_("default organization"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("staff status"), default=False)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class AuditEvent(models.Model):
    """A security-relevant action: who did what to which object, from where. Append-only.

    ``org`` is empty for events that belong to no organisation (a failed login for an unknown
    e-mail address).
    """

    class Action(models.TextChoices):
        LOGIN_SUCCEEDED = "login_succeeded", _("Login succeeded")
        LOGIN_FAILED = "login_failed", _("Login failed")
        LOGOUT = "logout", _("Logout")
        PASSWORD_CHANGED = "password_changed", _("Password changed")
        USER_REGISTERED = "user_registered", _("User registered")
        ROLE_CHANGED = "role_changed", _("Role changed")
        MEMBER_REMOVED = "member_removed", _("Member removed")
        INVITATION_CREATED = "invitation_created", _("Invitation created")
        INVITATION_ACCEPTED = "invitation_accepted", _("Invitation accepted")
        INVITATION_REVOKED = "invitation_revoked", _("Invitation revoked")
        CREDENTIALS_CHANGED = "credentials_changed", _("Credentials changed")
        ORG_UPDATED = "org_updated", _("Organization updated")
        SERVICES_RESTARTED = "services_restarted", _("Integrations restarted")

    org = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    actor = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=40, choices=Action.choices)
    target_type = models.CharField(_("target type"), max_length=60, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at"]
        indexes = [models.Index(fields=["org", "-at"]), models.Index(fields=["action", "-at"])]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} at {self.at:%Y-%m-%d %H:%M}"
