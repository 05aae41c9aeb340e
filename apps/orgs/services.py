"""Writes of the orgs app: organisations, memberships and invitations."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from apps.accounts.models import AuditEvent, User
from apps.accounts.services import audit_record, tokens_for
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.services import model_update
from apps.orgs.models import Invitation, Membership, Organization, Role, role_at_least

ORG_EDITABLE = ("name", "timezone", "settings")


def _unique_slug(name: str) -> str:
    base = slugify(name, allow_unicode=False)[:60] or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def organization_create(
    *, name: str, owner: User, timezone_name: str = "Asia/Shanghai"
) -> Organization:
    """Create an organisation with ``owner`` as its owner and make it their default if unset."""
    org = Organization(name=name, slug=_unique_slug(name), timezone=timezone_name)
    org.full_clean()
    org.save()
    Membership.objects.create(org=org, user=owner, role=Role.OWNER)
    if owner.default_org_id is None:
        owner.default_org = org
        owner.save(update_fields=["default_org"])
    return org


@transaction.atomic
def organization_update(*, org: Organization, actor: User, **changes) -> Organization:
    org = Organization.objects.select_for_update().get(pk=org.pk)
    before = {field: getattr(org, field) for field in changes if hasattr(org, field)}
    model_update(instance=org, data=changes, editable=ORG_EDITABLE)
    audit_record(
        action=AuditEvent.Action.ORG_UPDATED,
        org=org,
        actor=actor,
        target=org,
        changes={"before": before, "after": changes},
    )
    return org


def organization_settings_update(*, org: Organization, actor: User, values: dict) -> Organization:
    """Write typed settings (declared in ``apps.orgs.org_settings``) into ``org.settings``,
    keeping every other key; invalid values raise ValidationError naming the key."""
    from apps.orgs.org_settings import settings_with

    current = Organization.objects.only("settings").get(pk=org.pk).settings
    return organization_update(org=org, actor=actor, settings=settings_with(current, values))


def _owner_count(org: Organization) -> int:
    return Membership.objects.filter(org=org, role=Role.OWNER).count()


def _check_can_manage(
    actor_membership: Membership, target: Membership, new_role: str | None
) -> None:
    """Admins manage everyone but owners; only owners grant or take the owner role."""
    if not actor_membership.has_role(Role.ADMIN):
        raise ApplicationError(
            _("Only owners and admins can manage members."), code="permission_denied"
        )
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_membership.role != Role.OWNER:
        from apps.core.exceptions import PermissionDeniedError

        raise PermissionDeniedError(_("Only an owner can change an owner's membership."))


@transaction.atomic
def membership_change_role(
    *, org: Organization, actor_membership: Membership, membership_id: int, role: str, ip=None
) -> Membership:
    if role not in Role.values:
        raise ApplicationError(_("Unknown role."), fields={"role": [_("Unknown role.")]})
    # Lock the org's owner rows so two concurrent demotions cannot both pass the last-owner check.
    list(Membership.objects.select_for_update().filter(org=org, role=Role.OWNER))
    try:
        membership = Membership.objects.select_for_update().get(org=org, id=membership_id)
    except Membership.DoesNotExist as exc:
        raise NotFoundError(_("Member not found.")) from exc
    _check_can_manage(actor_membership, membership, role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(org) <= 1:
        raise ConflictError(_("The last owner cannot be demoted."), code="last_owner")
    old = membership.role
    membership.role = role
    membership.full_clean()
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        action=AuditEvent.Action.ROLE_CHANGED,
        org=org,
        actor=actor_membership.user,
        target=membership,
        ip=ip,
        changes={"from": old, "to": role, "user_id": membership.user_id},
    )
    return membership


@transaction.atomic
def membership_remove(
    *, org: Organization, actor_membership: Membership, membership_id: int, ip=None
) -> None:
    list(Membership.objects.select_for_update().filter(org=org, role=Role.OWNER))
    try:
        membership = Membership.objects.select_for_update().get(org=org, id=membership_id)
    except Membership.DoesNotExist as exc:
        raise NotFoundError(_("Member not found.")) from exc
    _check_can_manage(actor_membership, membership, None)
    if membership.role == Role.OWNER and _owner_count(org) <= 1:
        raise ConflictError(_("The last owner cannot be removed."), code="last_owner")
    user = membership.user
    membership.delete()
    if user.default_org_id == org.id:
        user.default_org = None
        user.save(update_fields=["default_org"])
    audit_record(
        action=AuditEvent.Action.MEMBER_REMOVED,
        org=org,
        actor=actor_membership.user,
        target=("orgs.membership", membership_id),
        ip=ip,
        changes={"user_id": user.id},
    )


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class CreatedInvitation:
    invitation: Invitation
    token: str  # Shown once; only its hash is stored.


@transaction.atomic
def invitation_create(
    *, org: Organization, actor_membership: Membership, email: str, role: str, accept_url: str = ""
) -> CreatedInvitation:
    email = email.strip().lower()
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        from apps.core.exceptions import PermissionDeniedError

        raise PermissionDeniedError(_("Only an owner can invite another owner."))
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise ConflictError(
            _("This person is already a member."),
            code="already_member",
            fields={"email": [_("This person is already a member.")]},
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        org=org,
        email=email,
        role=role,
        token_hash=_hash_token(token),
        invited_by=actor_membership.user,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    invitation.full_clean()
    invitation.save()
    audit_record(
        action=AuditEvent.Action.INVITATION_CREATED,
        org=org,
        actor=actor_membership.user,
        target=invitation,
        changes={"email": email, "role": role},
    )
    link = f"{accept_url}?token={token}" if accept_url else token

    def _send() -> None:
        send_mail(
            subject=_("You are invited to %(org)s") % {"org": org.name},
            message=_("%(inviter)s invited you to join %(org)s as %(role)s.\n\nAccept: %(link)s\n")
            % {
                "inviter": actor_membership.user.get_full_name(),
                "org": org.name,
                "role": role,
                "link": link,
            },
            from_email=None,
            recipient_list=[email],
            fail_silently=True,
        )

    transaction.on_commit(_send)
    return CreatedInvitation(invitation=invitation, token=token)


@transaction.atomic
def invitation_revoke(*, org: Organization, actor: User, invitation_id: int) -> Invitation:
    try:
        invitation = Invitation.objects.select_for_update().get(org=org, id=invitation_id)
    except Invitation.DoesNotExist as exc:
        raise NotFoundError(_("Invitation not found.")) from exc
    if invitation.status != Invitation.Status.PENDING:
        raise ConflictError(_("Only a pending invitation can be revoked."), code="not_pending")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at", "updated_at"])
    audit_record(
        action=AuditEvent.Action.INVITATION_REVOKED, org=org, actor=actor, target=invitation
    )
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, user: User | None = None, name: str = "", password: str = ""
) -> Membership:
    """Accept by token: as the signed-in invitee, or by creating the invitee's account."""
    from django.contrib.auth import password_validation

    try:
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("org")
            .get(token_hash=_hash_token(token or ""))
        )
    except Invitation.DoesNotExist as exc:
        raise NotFoundError(_("This invitation does not exist.")) from exc
    status = invitation.status
    if status != Invitation.Status.PENDING:
        raise ConflictError(
            _("This invitation is %(status)s.") % {"status": Invitation.Status(status).label},
            code=f"invitation_{status}",
        )
    if user is None:
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise ApplicationError(
                _("An account with this e-mail exists: sign in, then accept."),
                code="login_required",
            )
        candidate = User(email=invitation.email, name=name)
        try:
            password_validation.validate_password(password, user=candidate)
        except Exception as exc:
            raise ApplicationError(
                _("The password is too weak."), fields={"password": list(exc.messages)}
            ) from exc
        user = User.objects.create_user(email=invitation.email, password=password, name=name)
    elif user.email.lower() != invitation.email:
        raise NotFoundError(_("This invitation does not exist."))
    membership, created = Membership.objects.get_or_create(
        org=invitation.org, user=user, defaults={"role": invitation.role}
    )
    if not created:
        raise ConflictError(_("You are already a member."), code="already_member")
    if user.default_org_id is None:
        user.default_org = invitation.org
        user.save(update_fields=["default_org"])
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    audit_record(
        action=AuditEvent.Action.INVITATION_ACCEPTED,
        org=invitation.org,
        actor=user,
        target=invitation,
    )
    return membership


def can_manage_members(membership: Membership) -> bool:
    return role_at_least(membership.role, Role.ADMIN)


@dataclass
class Registration:
    user: User
    organization: Organization
    tokens: dict[str, str]


@transaction.atomic
def user_register(
    *, email: str, password: str, name: str, organization_name: str, ip: str | None = None
) -> Registration:
    """Create the user, their organisation and the owner membership in one transaction
    (registration lives in orgs: it makes an organisation, and accounts imports no orgs code)."""
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ConflictError(
            _("A user with this e-mail address already exists."),
            code="email_taken",
            fields={"email": [_("A user with this e-mail address already exists.")]},
        )
    candidate = User(email=email, name=name)
    try:
        password_validation.validate_password(password, user=candidate)
    except Exception as exc:  # Django's ValidationError, reported on the password field.
        raise ApplicationError(
            _("The password is too weak."), fields={"password": list(exc.messages)}
        ) from exc
    user = User.objects.create_user(email=email, password=password, name=name)
    org = organization_create(name=organization_name, owner=user)
    audit_record(action=AuditEvent.Action.USER_REGISTERED, org=org, actor=user, target=user, ip=ip)
    return Registration(user=user, organization=org, tokens=tokens_for(user))
