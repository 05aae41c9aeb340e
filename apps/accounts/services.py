"""Writes of the accounts app: registration, login bookkeeping, password change, audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.models import AuditEvent, User
from apps.core.exceptions import ApplicationError
from apps.core.jwt import FAMILY_CLAIM, access_deny, family_revoke, new_refresh_token
from apps.core.redis import get_redis, redis_key


class LoginThrottled(ApplicationError):
    status_code = 429
    code = "throttled"

    def __init__(self, retry_after: int):
        super().__init__(_("Too many failed logins. Try again later."))
        self.retry_after = retry_after


class InvalidCredentials(ApplicationError):
    status_code = 401
    code = "invalid_credentials"


def audit_record(
    *,
    action: str,
    org=None,
    actor: User | None = None,
    target=None,
    ip: str | None = None,
    changes: dict | None = None,
) -> AuditEvent:
    """Append one audit event. ``target`` may be a model instance or a (type, id) pair."""
    target_type, target_id = "", ""
    if isinstance(target, tuple):
        target_type, target_id = target
    elif target is not None:
        target_type, target_id = target._meta.label_lower, str(target.pk)
    return AuditEvent.objects.create(
        org=org,
        actor=actor if actor and actor.is_authenticated else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        ip=ip or None,
        changes=changes or {},
    )


def tokens_for(user: User) -> dict[str, str]:
    """A token pair starting a new session (refresh-token family, see ``apps.core.jwt``)."""
    refresh = new_refresh_token(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _failure_keys(email: str, ip: str | None) -> list[tuple[str, int]]:
    keys = [(redis_key("login-fail", "email", email.lower()), settings.LOGIN_FAILURES_PER_EMAIL)]
    if ip:
        keys.append((redis_key("login-fail", "ip", ip), settings.LOGIN_FAILURES_PER_IP))
    return keys


def login_check_throttle(*, email: str, ip: str | None) -> None:
    """Refuse (429) when this e-mail or this IP has failed too often in the window."""
    client = get_redis()
    for key, limit in _failure_keys(email, ip):
        count = int(client.get(key) or 0)
        if count >= limit:
            ttl = client.ttl(key)
            raise LoginThrottled(retry_after=max(int(ttl), 1))


# INCR and set the window's expiry on the first failure only, atomically (Redis 6.2 has no
# EXPIRE NX, and the embedded Redis is 6.2).
_INCR_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _record_failure(*, email: str, ip: str | None) -> None:
    client = get_redis()
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key, _limit in _failure_keys(email, ip):
        client.eval(_INCR_WINDOW, 1, key, window)


def user_login(*, email: str, password: str, ip: str | None = None, request=None) -> dict:
    """Check the throttle, authenticate, audit the outcome and return a token pair."""
    email = (email or "").strip().lower()
    login_check_throttle(email=email, ip=ip)
    user = authenticate(request, email=email, password=password)
    if user is None:
        _record_failure(email=email, ip=ip)
        known = User.objects.filter(email__iexact=email).first()
        audit_record(
            action=AuditEvent.Action.LOGIN_FAILED,
            org=known.default_org if known else None,
            target=known or ("accounts.user", ""),
            ip=ip,
            changes={"email": email},
        )
        raise InvalidCredentials(_("E-mail or password is incorrect."))
    audit_record(
        action=AuditEvent.Action.LOGIN_SUCCEEDED,
        org=user.default_org,
        actor=user,
        target=user,
        ip=ip,
    )
    return tokens_for(user)


def user_logout(*, user: User, refresh: str, ip: str | None = None, access=None) -> None:
    """End the session: blacklist the refresh token, revoke its family (every token rotated
    from the same login) and deny the access token ``access`` (a validated token) until it
    expires."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise ApplicationError(
            _("The refresh token is invalid or expired."), code="token_invalid"
        ) from exc
    if str(token.get("user_id")) != str(user.pk):
        raise ApplicationError(_("The refresh token is invalid or expired."), code="token_invalid")
    token.blacklist()
    family_revoke(token.get(FAMILY_CLAIM) or token.get("jti"), exp=token.get("exp"))
    if access is not None and hasattr(access, "get"):
        access_deny(access.get("jti"), exp=access.get("exp"))
    audit_record(
        action=AuditEvent.Action.LOGOUT, org=user.default_org, actor=user, target=user, ip=ip
    )


@transaction.atomic
def user_update(*, user: User, name: str | None = None, default_org=None) -> User:
    fields = []
    if name is not None:
        user.name = name
        fields.append("name")
    if default_org is not None:
        if not user.memberships.filter(org=default_org).exists():
            raise ApplicationError(
                _("You are not a member of that organization."),
                fields={"default_org": [_("You are not a member of that organization.")]},
            )
        user.default_org = default_org
        fields.append("default_org")
    if fields:
        user.full_clean(exclude=["password"])
        user.save(update_fields=fields)
    return user


@transaction.atomic
def user_change_password(
    *, user: User, old_password: str, new_password: str, ip: str | None = None
) -> None:
    if not user.check_password(old_password):
        raise ApplicationError(
            _("The current password is incorrect."),
            fields={"old_password": [_("The current password is incorrect.")]},
        )
    try:
        password_validation.validate_password(new_password, user=user)
    except Exception as exc:
        raise ApplicationError(
            _("The new password is too weak."), fields={"new_password": list(exc.messages)}
        ) from exc
    user.set_password(new_password)
    user.save(update_fields=["password"])
    audit_record(
        action=AuditEvent.Action.PASSWORD_CHANGED,
        org=user.default_org,
        actor=user,
        target=user,
        ip=ip,
    )
