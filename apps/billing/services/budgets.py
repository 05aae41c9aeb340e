"""Budgets: create, update, delete and row locks."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.billing import selectors
from apps.billing.models import Budget
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.core.services import model_update
from apps.orgs.models import Organization
from apps.orgs.selectors import membership_exists

# --- Budgets --------------------------------------------------------------------------------------
BUDGET_FIELDS = {
    "name",
    "scope",
    "user",
    "wechat_account_id",
    "money_limit",
    "token_limit",
    "currency",
    "soft_thresholds",
    "action",
    "is_active",
}


def _check_budget_user(org: Organization, user: User | None) -> None:
    if user is not None and not membership_exists(org=org, user=user):
        raise ApplicationError(
            _("The user is not a member of this organization."), fields={"user": ["not_member"]}
        )


def _check_budget_account(org: Organization, wechat_account_id: int | None) -> None:
    """The account must be the organisation's: another organisation's id and a missing one are
    refused alike. Looked up by name (billing sits below wechat_accounts and never imports it)."""
    if wechat_account_id is None:
        return
    from django.apps import apps

    account_model = apps.get_model("wechat_accounts", "WeChatAccount")
    if not account_model.objects.filter(org=org, id=wechat_account_id).exists():
        raise ApplicationError(
            _("Unknown WeChat account."), fields={"wechat_account_id": ["not_found"]}
        )


@transaction.atomic
def budget_create(*, org: Organization, **fields) -> Budget:
    unknown = set(fields) - BUDGET_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown budget fields: %s") % ", ".join(sorted(unknown)))
    fields.setdefault("soft_thresholds", list(settings.BILLING_DEFAULT_SOFT_THRESHOLDS))
    fields.setdefault("currency", settings.BILLING_DEFAULT_CURRENCY)
    _check_budget_user(org, fields.get("user"))
    _check_budget_account(org, fields.get("wechat_account_id"))
    budget = Budget(org=org, **fields)
    budget.full_clean()
    budget.save()
    return budget


@transaction.atomic
def budget_update(*, org: Organization, budget_id: int, **changes) -> Budget:
    unknown = set(changes) - BUDGET_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown budget fields: %s") % ", ".join(sorted(unknown)))
    budget = Budget.objects.select_for_update().filter(org=org, id=budget_id).first()
    if budget is None:
        raise NotFoundError(_("Budget not found."))
    if "user" in changes:
        _check_budget_user(org, changes["user"])
    if "wechat_account_id" in changes:
        _check_budget_account(org, changes["wechat_account_id"])
    model_update(instance=budget, data=changes)
    return budget


@transaction.atomic
def budget_delete(*, org: Organization, budget_id: int) -> None:
    deleted, _rows = Budget.objects.filter(org=org, id=budget_id).delete()
    if not deleted:
        raise NotFoundError(_("Budget not found."))


def _lock_budgets(
    *, org: Organization, user_id: int | None, wechat_account_id: int | None
) -> list[Budget]:
    return list(
        selectors.budgets_applicable(
            org=org, user_id=user_id, wechat_account_id=wechat_account_id
        ).select_for_update()
    )
