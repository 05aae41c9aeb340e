"""Reserve, settle, release and record usage: the ledger and the usage rollups."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.billing import selectors
from apps.billing.config_cache import MeteringConfig, metering_config
from apps.billing.models import (
    CostLedger,
    Kind,
    Reservation,
)
from apps.billing.services import hardcap
from apps.billing.services._common import BudgetExceeded
from apps.billing.services._sql import insert_returning_id
from apps.billing.services.ledger import _savepoint_if_nested, _write_ledger
from apps.billing.services.prices import _price_and_cost
from apps.billing.services.thresholds import _alert_refusal
from apps.core import events
from apps.core.exceptions import NotFoundError
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)


# --- Reserve / settle / release -------------------------------------------------------------------
def reserve(
    *,
    org: Organization,
    provider: str,
    model: str,
    kind: str,
    estimated_input_tokens: int,
    estimated_output_tokens: int | None = None,
    request_id: str,
    user: User | None = None,
    wechat_account_id: int | None = None,
    conversation_id: int | None = None,
    sop_run_id: int | None = None,
    estimated_units: int = 0,
) -> Reservation:
    """Hold the estimated cost of a call before making it, or raise ``BudgetExceeded``.

    Checks every active budget the call counts against (organisation, the user's, the
    account's): usage this month + live holds + this estimate must stay within each limit of a
    "block" budget. Calling it again with the same ``request_id`` returns the same reservation
    while it is held or settled; after a release or expiry (a retried call) the same row is
    checked and held again.
    ``estimated_output_tokens`` defaults to ``BILLING_DEFAULT_OUTPUT_TOKENS``.

    A refusal records the budget's 100 % alert for the period (once) and sends
    ``budget_threshold_crossed`` after commit.

    On PostgreSQL the check and the insert of a new request id are ONE autocommitted statement
    (``_reserve_checked``): the budget rows are locked only while the server runs it. Elsewhere
    (SQLite) they run in one transaction: lock, read the sums, insert.
    """
    if estimated_output_tokens is None:
        estimated_output_tokens = settings.BILLING_DEFAULT_OUTPUT_TOKENS
    call = dict(
        provider=provider,
        model=model,
        kind=kind,
        estimated_input_tokens=estimated_input_tokens,
        estimated_output_tokens=estimated_output_tokens,
        request_id=request_id,
        user=user,
        wechat_account_id=wechat_account_id,
        conversation_id=conversation_id,
        sop_run_id=sop_run_id,
        estimated_units=estimated_units,
    )
    config = metering_config(org.pk)
    try:
        blocking = config.blocking_applies(
            user_id=getattr(user, "pk", None), wechat_account_id=wechat_account_id
        )
        if blocking and connection.vendor == "postgresql":
            reservation = _reserve_checked(org=org, config=config, **call)
        elif blocking:
            with transaction.atomic():
                reservation = _reserve_new(org=org, config=config, check=True, **call)
        else:
            # No budget can refuse the call: one autocommitted INSERT, no lock, no transaction.
            reservation = _reserve_new(org=org, config=config, check=False, **call)
        if reservation is None:  # The request id exists: a retry or a re-hold.
            reservation = _reserve_existing(org=org, config=config, **call)
        return reservation
    except BudgetExceeded as exc:
        existing = selectors.reservation_get(org=org, request_id=request_id)
        if existing is not None and existing.status in (
            Reservation.Status.HELD,
            Reservation.Status.SETTLED,
        ):
            return existing  # A retry of an admitted call is not refused afterwards.
        _alert_refusal(org=org, exc=exc)
        raise
    except IntegrityError:
        # A concurrent call with the same request id inserted first: return its reservation.
        existing = selectors.reservation_get(org=org, request_id=request_id)
        if existing is None:
            raise
        return existing


def _reservation_fields(
    *,
    now: dt.datetime,
    cost: Decimal,
    currency: str,
    provider,
    model,
    kind,
    estimated_input_tokens,
    estimated_output_tokens,
    request_id,
    user,
    wechat_account_id,
    conversation_id,
    sop_run_id,
    estimated_units,
) -> dict:
    return dict(
        status=Reservation.Status.HELD,
        finished_at=None,
        user=user,
        wechat_account_id=wechat_account_id,
        conversation_id=conversation_id,
        sop_run_id=sop_run_id,
        provider=provider,
        model=model,
        kind=kind,
        estimated_input_tokens=estimated_input_tokens,
        estimated_output_tokens=estimated_output_tokens,
        estimated_units=estimated_units,
        estimated_cost=cost,
        currency=currency,
        expires_at=now + dt.timedelta(seconds=settings.BILLING_RESERVATION_TTL_SECONDS),
    )


def _hold_cost(*, org, config, now, **call) -> tuple[Decimal, str]:
    """Cost and currency of the call's estimate."""
    _price, cost, currency = _price_and_cost(
        org=org,
        provider=call["provider"],
        model=call["model"],
        input_tokens=call["estimated_input_tokens"],
        output_tokens=call["estimated_output_tokens"],
        units=call["estimated_units"],
        at=now,
        config=config,
    )
    return cost, currency


def _new_reservation(*, org, config, **call) -> tuple[Reservation, dict]:
    """The unsaved reservation of a call and its column values (validated)."""
    now = timezone.now()
    cost, currency = _hold_cost(org=org, config=config, now=now, **call)
    fields = _reservation_fields(now=now, cost=cost, currency=currency, **call)
    reservation = Reservation(
        org=org, request_id=call["request_id"], created_at=now, updated_at=now, **fields
    )
    # Hot path: the foreign keys are instances we hold and the unique request id is enforced by
    # the database (the conflict clause), so skip those validation queries.
    reservation.full_clean(
        exclude=["org", "user"], validate_unique=False, validate_constraints=False
    )
    values = {
        "org_id": org.pk,
        "request_id": reservation.request_id,
        "created_at": now,
        "updated_at": now,
        **{name: getattr(reservation, name) for name in _RESERVATION_COLUMNS},
    }
    return reservation, values


def _saved(reservation: Reservation, pk: int) -> Reservation:
    reservation.pk = pk
    reservation._state.adding = False
    reservation._state.db = connection.alias
    return reservation


def _reserve_checked(*, org, config, **call) -> Reservation | None:
    """PostgreSQL, a blocking budget applies: check the hard cap and insert in ONE statement,
    autocommitted when the caller has no transaction (``hardcap.insert_checked``). None when the
    request id already exists (nothing written); raises ``BudgetExceeded`` on a refusal."""
    reservation, values = _new_reservation(org=org, config=config, **call)
    pk = hardcap.insert_checked(org=org, reservation=reservation, values=values)
    return None if pk is hardcap.KNOWN else _saved(reservation, pk)


def _reserve_new(*, org, config, check: bool, **call) -> Reservation | None:
    """Hold a call under a new request id: one ``INSERT ... ON CONFLICT DO NOTHING``. None when
    the request id already exists (nothing written). With ``check``, in the caller's
    transaction: the budgets are then locked and the hold checked (the path on SQLite)."""
    reservation, values = _new_reservation(org=org, config=config, **call)
    now = reservation.created_at
    pk = insert_returning_id(Reservation, values, conflict=("org_id", "request_id"))
    if pk is None:
        return None
    if check:
        # The budget locks serialise an organisation's reservations until commit, so they are
        # taken last: while they are held only the sums are read (they see the row inserted
        # above as a live hold) before the commit. A refusal rolls the insert back.
        hardcap.check_hold(org=org, config=config, now=now, reservation=reservation, included=True)
    return _saved(reservation, pk)


# What a reservation says about its call: written on reserve, returned when settling claims it.
_CALL_COLUMNS = (
    "user_id",
    "wechat_account_id",
    "conversation_id",
    "sop_run_id",
    "provider",
    "model",
    "kind",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "estimated_units",
    "estimated_cost",
    "currency",
)
_RESERVATION_COLUMNS = ("status", "finished_at", *_CALL_COLUMNS, "expires_at")


@transaction.atomic
def _reserve_existing(*, org, config, request_id, user, wechat_account_id, **call) -> Reservation:
    """The request id is known: return its reservation while held or settled; after a release
    or an expiry (a retried call) check the hold again and re-activate the row."""
    existing = selectors.reservation_get(org=org, request_id=request_id)
    if existing is None:
        raise IntegrityError("reservation vanished")  # Deleted meanwhile: ``reserve`` re-reads.
    if existing.status in (Reservation.Status.HELD, Reservation.Status.SETTLED):
        return existing
    now = timezone.now()
    blocking = config.blocking_applies(
        user_id=getattr(user, "pk", None), wechat_account_id=wechat_account_id
    )
    call.update(request_id=request_id, user=user, wechat_account_id=wechat_account_id)
    cost, currency = _hold_cost(org=org, config=config, now=now, **call)
    fields = _reservation_fields(now=now, cost=cost, currency=currency, **call)
    for name, value in fields.items():
        setattr(existing, name, value)
    existing.full_clean(exclude=["org", "user"], validate_unique=False, validate_constraints=False)
    if blocking:
        hardcap.check_hold(org=org, config=config, now=now, reservation=existing)
    # Reactivate only if nobody settled or re-held it meanwhile.
    reactivated = Reservation.objects.filter(
        pk=existing.pk, status__in=[Reservation.Status.RELEASED, Reservation.Status.EXPIRED]
    ).update(**fields, updated_at=now)
    if not reactivated:
        return Reservation.objects.get(pk=existing.pk)
    return existing


def settle(
    *,
    reservation: Reservation,
    input_tokens: int | None,
    output_tokens: int | None,
    units: int | None = None,
    provider_cost: Decimal | None = None,
    provider_currency: str | None = "",
    model: str | None = None,
    usage_source: str | None = None,
) -> CostLedger:
    """Record the actual usage of a reserved call in the ledger and drop the hold.

    Token counts of None (the provider reported no usage) fall back to the reservation's
    estimate, recorded with ``usage_source="estimated"``. ``model`` overrides the reserved model
    when the provider answered with another one. Settling twice returns the first ledger row.
    A released or expired reservation can still be settled: the call happened, it costs.
    """
    org = reservation.org  # From the reservation itself: it cannot name another org's row.
    usage = dict(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        provider_cost=provider_cost,
        provider_currency=provider_currency or "",
        model=model,
        usage_source=usage_source,
    )
    try:
        if reservation.pk is not None and reservation.status != Reservation.Status.SETTLED:
            entry = _settle_fast(org=org, reservation=reservation, **usage)
            if entry is not None:
                return entry
        return _settle(org=org, reservation_id=reservation.pk, **usage)
    except IntegrityError:
        # The request id was already recorded (``record_usage`` with the same id).
        existing = selectors.ledger_get(org=org, request_id=reservation.request_id)
        if existing is None:
            raise
        Reservation.objects.filter(org=org, id=reservation.pk).exclude(
            status=Reservation.Status.SETTLED
        ).update(status=Reservation.Status.SETTLED, finished_at=timezone.now())
        return existing


@transaction.atomic
def _settle(
    *,
    org,
    reservation_id,
    input_tokens,
    output_tokens,
    units,
    provider_cost,
    provider_currency,
    model,
    usage_source,
) -> CostLedger:
    # Lock order: this reservation, the aggregate rows (upserts), then the budgets (only to
    # evaluate thresholds, after the writes). Nothing takes them the other way round:
    # ``reserve`` holds budget locks but only reads and inserts a new reservation.
    now = timezone.now()
    reservation = _claim(org=org, reservation_id=reservation_id, now=now)
    if reservation is None:
        # Already settled (return its ledger row) or missing: the locking path decides.
        reservation = (
            Reservation.objects.select_for_update().filter(org=org, id=reservation_id).first()
        )
        if reservation is None:
            raise NotFoundError(_("Reservation not found."))
        existing = selectors.ledger_get(org=org, request_id=reservation.request_id)
        if existing is not None:
            return existing
        reservation.status = Reservation.Status.SETTLED
        reservation.finished_at = now
        reservation.save(update_fields=["status", "finished_at", "updated_at"])
    _claimed, entry = _settle_write(
        org=org,
        reservation=reservation,
        now=now,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        provider_cost=provider_cost,
        provider_currency=provider_currency,
        model=model,
        usage_source=usage_source,
    )
    if entry is None:
        # The request id was already recorded (``record_usage`` with the same id); the
        # reservation is settled by it.
        return selectors.ledger_get(org=org, request_id=reservation.request_id)
    return entry


def _settle_fast(*, org, reservation: Reservation, **usage) -> CostLedger | None:
    """Settle from the caller's reservation instance in one statement on PostgreSQL: mark it
    settled only if it is not yet and still holds what the instance says (else None, nothing
    written: the locking path decides), insert the ledger row and add to the sums."""
    now = timezone.now()
    at = Reservation._meta.get_field("finished_at").get_db_prep_save(now, connection)
    settled = Reservation.Status.SETTLED
    r = reservation
    params = [settled, at, at, org.pk, r.pk, settled, r.request_id, r.provider, r.model, r.kind]
    params += [r.estimated_input_tokens, r.estimated_output_tokens, r.estimated_units]
    params += [r.user_id, r.wechat_account_id, r.conversation_id, r.sop_run_id]
    claim = (_FAST_CLAIM_SQL[connection.vendor == "postgresql"], params)
    with _savepoint_if_nested():
        claimed, entry = _settle_write(
            org=org, reservation=reservation, now=now, claim=claim, **usage
        )
    if not claimed:
        return None
    if entry is None:  # Recorded by ``record_usage`` under the same request id.
        return selectors.ledger_get(org=org, request_id=reservation.request_id)
    reservation.status = settled
    reservation.finished_at = now
    return entry


def _fast_claim_sql(null_safe_equal: str) -> str:
    # Fixed column names (the model's default table and columns).
    return (
        "UPDATE billing_reservation SET status = %s, finished_at = %s, updated_at = %s "  # noqa: S608
        "WHERE org_id = %s AND id = %s AND status <> %s AND request_id = %s AND provider = %s "
        "AND model = %s AND kind = %s AND estimated_input_tokens = %s "
        "AND estimated_output_tokens = %s AND estimated_units = %s "
        f"AND user_id {null_safe_equal} %s AND wechat_account_id {null_safe_equal} %s "
        f"AND conversation_id {null_safe_equal} %s AND sop_run_id {null_safe_equal} %s"
    )


# Indexed by "is PostgreSQL": SQLite's IS compares NULLs as equal.
_FAST_CLAIM_SQL = (_fast_claim_sql("IS"), _fast_claim_sql("IS NOT DISTINCT FROM"))


def _settle_write(
    *,
    org,
    reservation: Reservation,
    now: dt.datetime,
    input_tokens,
    output_tokens,
    units,
    provider_cost,
    provider_currency,
    model,
    usage_source,
    claim: tuple[str, list] | None = None,
) -> tuple[bool, CostLedger | None]:
    config = metering_config(org.pk)
    estimated = input_tokens is None or output_tokens is None
    source = usage_source or (
        CostLedger.UsageSource.ESTIMATED if estimated else CostLedger.UsageSource.REPORTED
    )
    input_tokens = reservation.estimated_input_tokens if input_tokens is None else input_tokens
    output_tokens = reservation.estimated_output_tokens if output_tokens is None else output_tokens
    input_tokens, output_tokens, overrun = _cap_to_reservation(
        org=org,
        config=config,
        reservation=reservation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model,
    )
    claimed, entry = _write_ledger(
        org=org,
        config=config,
        now=now,
        reservation=reservation,
        request_id=reservation.request_id,
        user_id=reservation.user_id,
        wechat_account_id=reservation.wechat_account_id,
        conversation_id=reservation.conversation_id,
        sop_run_id=reservation.sop_run_id,
        provider=reservation.provider,
        model=model or reservation.model,
        kind=reservation.kind,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=reservation.estimated_units if units is None else units,
        provider_cost=provider_cost,
        provider_currency=provider_currency,
        usage_source=source,
        claim=claim,
    )
    if claimed and overrun is not None:
        transaction.on_commit(lambda: events.ai_usage_overrun.send(sender=Reservation, **overrun))
    return claimed, entry


_CLAIMED = ("request_id", *_CALL_COLUMNS)

# Fixed column names (the model's default table and columns).
_CLAIM_SQL = (
    "UPDATE billing_reservation SET status = %s, finished_at = %s, updated_at = %s "  # noqa: S608
    "WHERE org_id = %s AND id = %s AND status <> %s "
    f"RETURNING {', '.join(_CLAIMED)}"
)


def _claim(*, org, reservation_id: int, now: dt.datetime) -> Reservation | None:
    """Mark a reservation not yet settled as settled and return what settling needs, in one
    statement (it also locks the row until commit). None when it is settled or missing."""
    sql = _CLAIM_SQL
    field = Reservation._meta.get_field("finished_at")
    at = field.get_db_prep_save(now, connection)
    settled = Reservation.Status.SETTLED
    with connection.cursor() as cursor:
        cursor.execute(sql, [settled, at, at, org.pk, reservation_id, settled])
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(_CLAIMED, row, strict=True))
    values["estimated_cost"] = Decimal(str(values["estimated_cost"]))
    return Reservation(
        pk=reservation_id, org=org, status=settled, finished_at=now, updated_at=now, **values
    )


def _cap_to_reservation(
    *,
    org,
    config: MeteringConfig,
    reservation: Reservation,
    input_tokens: int,
    output_tokens: int,
    model: str | None,
) -> tuple[int, int, dict | None]:
    """Usage to charge: at most the reservation's worth when a hard (blocking) budget applies.

    ``reserve`` proved that the reserved amount fits the budget; a provider that bills more
    (ignored ``max_tokens``, a server-side history larger than we saw) would otherwise take the
    organisation past its hard limit after the fact. The overrun (returned) is announced as
    ``ai_usage_overrun`` after commit (monitoring raises an alert) instead of being charged.
    """
    reserved_in = int(reservation.estimated_input_tokens)
    reserved_out = int(reservation.estimated_output_tokens)
    if input_tokens <= reserved_in and output_tokens <= reserved_out:
        return input_tokens, output_tokens, None
    blocking = config.blocking_applies(
        user_id=reservation.user_id, wechat_account_id=reservation.wechat_account_id
    )
    if not blocking:
        return input_tokens, output_tokens, None
    overrun = {
        "org_id": org.pk,
        "request_id": reservation.request_id,
        "provider": reservation.provider,
        "model": model or reservation.model,
        "reserved_tokens": reserved_in + reserved_out,
        "reported_tokens": input_tokens + output_tokens,
        "reported_input_tokens": input_tokens,
        "reported_output_tokens": output_tokens,
        "reserved_cost": str(reservation.estimated_cost),
        "currency": reservation.currency,
        "conversation_id": reservation.conversation_id,
    }
    return min(input_tokens, reserved_in), min(output_tokens, reserved_out), overrun


@transaction.atomic
def release(*, reservation: Reservation) -> Reservation:
    """Drop the hold of a call that failed before costing anything. No-op unless held."""
    now = timezone.now()
    Reservation.objects.filter(
        org_id=reservation.org_id, id=reservation.pk, status=Reservation.Status.HELD
    ).update(status=Reservation.Status.RELEASED, finished_at=now, updated_at=now)
    return Reservation.objects.get(org_id=reservation.org_id, id=reservation.pk)


@transaction.atomic
def reservations_expire(*, org: Organization, now: dt.datetime | None = None) -> int:
    """Mark held reservations past ``expires_at`` as expired (left by a crashed worker).

    Expired holds already stopped counting at ``expires_at``; this is the bookkeeping. The
    conditional update makes it idempotent and safe against a concurrent settle.
    """
    now = now or timezone.now()
    return Reservation.objects.filter(
        org=org, status=Reservation.Status.HELD, expires_at__lte=now
    ).update(status=Reservation.Status.EXPIRED, finished_at=now, updated_at=now)


def record_usage(
    *,
    org: Organization,
    provider: str,
    model: str,
    request_id: str,
    kind: str = Kind.PLATFORM,
    units: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    user: User | None = None,
    wechat_account_id: int | None = None,
    conversation_id: int | None = None,
    sop_run_id: int | None = None,
    provider_cost: Decimal | None = None,
    provider_currency: str = "",
    usage_source: str = CostLedger.UsageSource.REPORTED,
) -> CostLedger:
    """Record a call made without a reservation (platform operations, priced per unit; or an
    AI call that was not reserved). Never refused; counts against budgets and raises their
    threshold alerts. Recording the same ``request_id`` twice returns the first row."""
    try:
        return _record_usage(
            org=org,
            provider=provider,
            model=model,
            request_id=request_id,
            kind=kind,
            units=units,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            user=user,
            wechat_account_id=wechat_account_id,
            conversation_id=conversation_id,
            sop_run_id=sop_run_id,
            provider_cost=provider_cost,
            provider_currency=provider_currency,
            usage_source=usage_source,
        )
    except IntegrityError:
        existing = selectors.ledger_get(org=org, request_id=request_id)
        if existing is None:
            raise
        return existing


def _record_usage(*, org, request_id, user, wechat_account_id, **fields) -> CostLedger:
    # No transaction of its own: on PostgreSQL the writes are one statement (``ledger_write``).
    with _savepoint_if_nested():
        _claimed, entry = _write_ledger(
            org=org,
            config=metering_config(org.pk),
            now=timezone.now(),
            reservation=None,
            request_id=request_id,
            user_id=getattr(user, "pk", None),
            wechat_account_id=wechat_account_id,
            **fields,
        )
    if entry is None:  # Recorded before: nothing was written.
        return selectors.ledger_get(org=org, request_id=request_id)
    return entry


def record_usage_claimed(
    *,
    org: Organization,
    claim: tuple[str, list],
    provider: str,
    model: str,
    request_id: str,
    kind: str = Kind.PLATFORM,
    units: int = 0,
    user_id: int | None = None,
    wechat_account_id: int | None = None,
    conversation_id: int | None = None,
    also_insert: tuple = (),
) -> bool:
    """``record_usage`` of a platform operation together with the caller's state change: the
    ledger row is written only if ``claim`` (an ``UPDATE`` and its parameters, e.g. the message's
    ``sending -> sent``) changes a row; ``also_insert`` rows (the call's log row) are written
    either way. On PostgreSQL all of it is one statement, elsewhere one transaction. Returns
    whether the claim changed a row. An error in the statement writes nothing, claim included;
    one after it (the budget threshold check) leaves the claim made: on an error the caller
    looks at its row and makes its change on its own if it is not there."""
    with _savepoint_if_nested():
        claimed, _entry = _write_ledger(
            org=org,
            config=metering_config(org.pk),
            now=timezone.now(),
            reservation=None,
            request_id=request_id,
            user_id=user_id,
            wechat_account_id=wechat_account_id,
            conversation_id=conversation_id,
            sop_run_id=None,
            provider=provider,
            model=model,
            kind=kind,
            input_tokens=0,
            output_tokens=0,
            units=units,
            provider_cost=None,
            provider_currency="",
            usage_source=CostLedger.UsageSource.REPORTED,
            claim=claim,
            also_insert=also_insert,
        )
    return claimed
