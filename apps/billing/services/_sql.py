"""Hand-written statements of the metering hot path (PostgreSQL and SQLite alike).

Compiling an ORM insert or upsert costs more CPU than running it (the profile of issue 19: about
1 ms of Python per statement); these build each statement's SQL once per process from the
models' metadata and only adapt the values per call. Identifiers come from model metadata
(quoted), values are always parameters.
"""

from __future__ import annotations

from functools import cache

from django.db import connection


@cache
def _statement(model, names: tuple[str, ...], conflict: tuple[str, ...], upsert: int) -> tuple:
    """SQL and fields of an insert of ``names``: plain (``conflict`` empty), ``ON CONFLICT DO
    NOTHING RETURNING id``, or (``upsert`` = number of key columns) adding the remaining columns
    to the existing row."""
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    fields = tuple(meta.get_field(name) for name in names)
    columns = [quote(f.column) for f in fields]
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    if upsert:
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns[upsert:])
        sql += f" ON CONFLICT ({', '.join(columns[:upsert])}) DO UPDATE SET {updates}"
    elif conflict:
        targets = ", ".join(quote(meta.get_field(name).column) for name in conflict)
        sql += f" ON CONFLICT ({targets}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    else:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields


def _params(fields, values) -> list:
    return [f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)]


def insert_returning_id(model, values: dict, *, conflict: tuple[str, ...] = ()) -> int | None:
    """Insert one row and return its id; with ``conflict`` (the fields of a unique constraint),
    return None instead when a row with the same values exists."""
    sql, fields = _statement(model, tuple(values), conflict, 0)
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(fields, values.values()))
        row = cursor.fetchone()
    return None if row is None else row[0]


@cache
def _guarded_statement(model, names: tuple[str, ...], conflict: tuple[str, ...], guard: str):
    meta = model._meta
    quote = connection.ops.quote_name
    fields = tuple(meta.get_field(name) for name in names)
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    targets = ", ".join(quote(meta.get_field(name).column) for name in conflict)
    pk = quote(meta.pk.column)
    sql = (
        f"WITH guard AS (SELECT {guard} AS refused), "  # noqa: S608
        f"ins AS (INSERT INTO {quote(meta.db_table)} ({columns}) "
        f"SELECT {placeholders} FROM guard WHERE refused IS NULL "
        f"ON CONFLICT ({targets}) DO NOTHING RETURNING {pk}) "
        f"SELECT (SELECT refused FROM guard), (SELECT {pk} FROM ins)"
    )
    return sql, fields


def insert_unless_refused(
    model, values: dict, *, conflict: tuple[str, ...], guard: str, guard_params: list
) -> tuple[object, int | None]:
    """PostgreSQL: evaluate ``guard`` (an SQL expression, e.g. a function call) and insert the
    row only if it is NULL, ``ON CONFLICT DO NOTHING``, in ONE statement. Returns (the guard's
    value, the new row's id or None when refused or the row exists). Outside a transaction the
    statement commits on its own: locks the guard takes last only while the server runs it."""
    sql, fields = _guarded_statement(model, tuple(values), conflict, guard)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*guard_params, *_params(fields, values.values())])
        refused, pk = cursor.fetchone()
    return refused, pk


def upsert_add(model, key: dict, deltas: dict) -> None:
    """Add ``deltas`` to the aggregate row ``key`` or create it, in one atomic statement
    (``INSERT ... ON CONFLICT DO UPDATE``)."""
    sql, fields = _statement(model, (*key, *deltas), (), len(key))
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(fields, [*key.values(), *deltas.values()]))


def _row_values(row) -> dict:
    """The column values of an unsaved model instance (every concrete field but the automatic
    primary key), ``auto_now`` fields filled as ``save()`` would."""
    fields = [f for f in row._meta.concrete_fields if not (f.primary_key and row.pk is None)]
    return {f.name: f.pre_save(row, True) for f in fields}


def ledger_write(
    *,
    ledger_model,
    ledger: dict,
    daily: tuple,
    monthly: tuple,
    claim: tuple[str, list] | None = None,
    also_insert: tuple = (),
) -> tuple[bool, int | None]:
    """Insert a ledger row unless its request id is recorded (``ON CONFLICT DO NOTHING``), and
    add it to the daily and monthly sums (``daily``/``monthly``: ``(model, key, deltas)``).

    With ``claim`` (an ``UPDATE`` and its parameters), nothing happens unless that statement
    changes a row. ``also_insert``: unsaved rows of other models inserted whatever the claim
    says (the metered call's log row). On PostgreSQL all of it is ONE statement (data-modifying
    CTEs), so outside a transaction it commits on its own, without ``BEGIN``/``COMMIT`` round
    trips; elsewhere the same statements run in one transaction. Returns (claimed, the new
    ledger row's id or None).
    """
    extra = [(type(row), _row_values(row)) for row in also_insert]
    if connection.vendor != "postgresql":
        return _ledger_write_statements(
            ledger_model=ledger_model,
            ledger=ledger,
            daily=daily,
            monthly=monthly,
            claim=claim,
            extra=extra,
        )
    sql, fields, daily_params, monthly_params, extra_fields = _ledger_cte(
        ledger_model,
        tuple(ledger),
        (daily[0], tuple(daily[1]), tuple(daily[2])),
        (monthly[0], tuple(monthly[1]), tuple(monthly[2])),
        claim[0] if claim else None,
        tuple((model, tuple(values)) for model, values in extra),
    )
    params = list(claim[1]) if claim else []
    params += _params(fields, ledger.values())
    for (model, key, deltas), names in ((daily, daily_params), (monthly, monthly_params)):
        values = {**key, **deltas}
        params += _params([model._meta.get_field(n) for n in names], [values[n] for n in names])
    for (_model, values), row_fields in zip(extra, extra_fields, strict=True):
        params += _params(row_fields, values.values())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        claimed, pk = cursor.fetchone()
    return bool(claimed), pk


# How the aggregates' columns derive from the inserted ledger row (``FROM ledger``); any other
# column is a parameter. Few parameters keep psycopg's query cache in use (at most 50).
_FROM_LEDGER = {
    "org_id": "org_id",
    "provider": "provider",
    "model": "model",
    "kind": "kind",
    "currency": "currency",
    "user_id": "COALESCE(user_id, 0)",
    "wechat_account_id": "COALESCE(wechat_account_id, 0)",
    "calls": "1",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "units": "units",
    "cost": "cost",
    "tokens": "input_tokens + output_tokens",
}


@cache
def _ledger_cte(ledger_model, ledger_names, daily, monthly, claim_sql: str | None, extra) -> tuple:
    quote = connection.ops.quote_name
    parts = []
    source = ""
    if claim_sql:
        parts.append(f"claimed AS ({claim_sql} RETURNING 1 AS one)")
        source = " FROM claimed"
    meta = ledger_model._meta
    table = quote(meta.db_table)
    fields = tuple(meta.get_field(name) for name in ledger_names)
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    returning = ", ".join(
        sorted(
            {
                "org_id",
                "provider",
                "model",
                "kind",
                "currency",
                "user_id",
                "wechat_account_id",
                "input_tokens",
                "output_tokens",
                "units",
                "cost",
            }
        )
    )
    parts.append(
        f"ledger AS (INSERT INTO {table} ({columns}) SELECT {placeholders}{source} "  # noqa: S608
        f"ON CONFLICT ({quote('org_id')}, {quote('request_id')}) DO NOTHING "
        f"RETURNING {quote(meta.pk.column)} AS id, {returning})"
    )
    param_names = []
    for name, (model, key, deltas) in (("daily", daily), ("monthly", monthly)):
        names = (*key, *deltas)
        upsert_sql, _fields = _statement(model, names, (), len(key))
        insert, conflict = upsert_sql.split(" VALUES ", 1)
        conflict = conflict.split(" ON CONFLICT ", 1)[1]
        exprs = [_FROM_LEDGER.get(n, "%s") for n in names]
        param_names.append(tuple(n for n in names if n not in _FROM_LEDGER))
        select = ", ".join(exprs)
        sql = f"{name} AS ({insert} SELECT {select} FROM ledger ON CONFLICT {conflict})"  # noqa: S608
        parts.append(sql)
    extra_fields = []
    for index, (model, names) in enumerate(extra):
        insert_sql, row_fields = _statement(model, names, (), 0)
        plain_insert = insert_sql.rsplit(" RETURNING ", 1)[0]
        parts.append(f"also_{index} AS ({plain_insert})")
        extra_fields.append(row_fields)
    claimed = "(SELECT count(*) FROM claimed)" if claim_sql else "1"
    sql = f"WITH {', '.join(parts)} SELECT {claimed}, (SELECT id FROM ledger)"  # noqa: S608
    return sql, fields, param_names[0], param_names[1], tuple(extra_fields)


def _ledger_write_statements(*, ledger_model, ledger, daily, monthly, claim, extra):
    from django.db import transaction

    with transaction.atomic():
        for model, values in extra:
            insert_returning_id(model, values)
        if claim:
            with connection.cursor() as cursor:
                cursor.execute(*claim)
                if cursor.rowcount != 1:
                    return False, None
        pk = insert_returning_id(ledger_model, ledger, conflict=("org_id", "request_id"))
        if pk is not None:
            upsert_add(*daily)
            upsert_add(*monthly)
    return True, pk
