"""Re-encrypt every encrypted column under the first key of FIELD_ENCRYPTION_KEYS."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from apps.core import crypto
from apps.core.fields import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields with the newest key (run after prepending a key)."

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            table = connection.ops.quote_name(model._meta.db_table)
            pk = connection.ops.quote_name(model._meta.pk.column)
            for field in fields:
                column = connection.ops.quote_name(field.column)
                with transaction.atomic(), connection.cursor() as cursor:
                    # Raw SQL on purpose: the ORM would decrypt and re-encrypt through the field,
                    # which works too, but this never holds plaintext in Python.
                    cursor.execute(
                        f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL"  # noqa: S608
                    )
                    for row_id, token in cursor.fetchall():
                        if not token:
                            continue
                        cursor.execute(
                            f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",  # noqa: S608
                            [crypto.rotate(token), row_id],
                        )
                        total += 1
            self.stdout.write(
                f"{model._meta.label}: re-encrypted {', '.join(f.name for f in fields)}"
            )
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} values."))
