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


def upsert_add(model, key: dict, deltas: dict) -> None:
    """Add ``deltas`` to the aggregate row ``key`` or create it, in one atomic statement
    (``INSERT ... ON CONFLICT DO UPDATE``)."""
    sql, fields = _statement(model, (*key, *deltas), (), len(key))
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(fields, [*key.values(), *deltas.values()]))
