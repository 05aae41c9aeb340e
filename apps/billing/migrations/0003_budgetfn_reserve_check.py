"""``billing_reserve_check``: the hard-cap check of ``reserve`` as a PostgreSQL function (issue 19).

``reserve`` under a blocking budget used to lock the budget rows, read the usage sums and commit
in three client round trips; with 8 workers on 2 cores the lock was held about 5 ms per call,
mostly waiting for the lock holder to be scheduled again. Called from one autocommitted
statement (``services.hardcap.insert_checked``), the function takes the locks, reads the sums
and, in the same statement, the reservation is inserted and committed: the lock is held only
while the server runs it.

Why a function and not a plain statement: under READ COMMITTED one statement has one snapshot,
taken before it waited for the lock, so it would not see the reservation the previous holder just
committed (over-admission). A VOLATILE PL/pgSQL function takes a fresh snapshot for each SQL
command inside it, so the sums read after the lock see every committed hold and usage.

PostgreSQL only: other databases keep the Python path (lock, sum, insert in one transaction).
"""

from django.db import migrations

FUNCTION = "billing_reserve_check"

# Arguments: organisation, the call's user and WeChat account (NULL for none), the period key
# ("YYYY-MM", the organisation's month), the moment of the call (holds that expire at or before
# it do not count), the estimate's cost and currency, and its tokens.
CREATE = """
CREATE OR REPLACE FUNCTION billing_reserve_check(
    p_org_id bigint,
    p_user_id bigint,
    p_account_id bigint,
    p_period text,
    p_now timestamptz,
    p_cost numeric,
    p_currency text,
    p_tokens bigint
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    ids bigint[];
    b record;
BEGIN
    -- The active blocking budgets this call counts against, locked in id order (the same order
    -- as every other budget lock, so no deadlock). A row changed while we waited is re-checked
    -- against these conditions by PostgreSQL before it is locked.
    SELECT array_agg(id) INTO ids FROM (
        SELECT id FROM billing_budget
        WHERE org_id = p_org_id AND is_active AND action = 'block'
          AND (scope = 'org'
               OR (scope = 'user' AND user_id = p_user_id)
               OR (scope = 'account' AND wechat_account_id = p_account_id))
        ORDER BY id
        FOR UPDATE
    ) AS locked;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    -- A new command, hence a new snapshot: it sees what the previous lock holder committed.
    -- Usage this period (monthly aggregates) plus live holds, as selectors.budget_sums reads.
    FOR b IN
        SELECT bu.id, bu.money_limit, bu.token_limit, bu.currency,
               COALESCE(SUM(s.cost) FILTER (WHERE s.currency = bu.currency), 0) AS money_used,
               COALESCE(SUM(s.tokens), 0) AS tokens_used
        FROM billing_budget AS bu
        LEFT JOIN (
            SELECT user_id, wechat_account_id, currency, cost, tokens
            FROM billing_usagemonthly
            WHERE org_id = p_org_id AND period = p_period
            UNION ALL
            SELECT user_id, wechat_account_id, currency, estimated_cost,
                   estimated_input_tokens + estimated_output_tokens
            FROM billing_reservation
            WHERE org_id = p_org_id AND status = 'held' AND expires_at > p_now
        ) AS s ON (
            bu.scope = 'org'
            OR (bu.scope = 'user' AND s.user_id = bu.user_id)
            OR (bu.scope = 'account' AND s.wechat_account_id = bu.wechat_account_id)
        )
        WHERE bu.org_id = p_org_id AND bu.id = ANY(ids)
        GROUP BY bu.id, bu.money_limit, bu.token_limit, bu.currency
        ORDER BY bu.id
    LOOP
        IF b.money_limit IS NOT NULL AND b.currency = p_currency
                AND b.money_used + p_cost > b.money_limit THEN
            RETURN jsonb_build_object(
                'budget_id', b.id, 'metric', 'money',
                'used', b.money_used::text, 'limit', b.money_limit::text);
        END IF;
        IF b.token_limit IS NOT NULL AND b.tokens_used + p_tokens > b.token_limit THEN
            RETURN jsonb_build_object(
                'budget_id', b.id, 'metric', 'tokens',
                'used', b.tokens_used::text, 'limit', b.token_limit::text);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
"""

DROP = (
    "DROP FUNCTION IF EXISTS billing_reserve_check("
    "bigint, bigint, bigint, text, timestamptz, numeric, text, bigint)"
)


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_seed_default_prices"),
    ]

    operations = [
        migrations.RunPython(create_function, drop_function),
    ]
