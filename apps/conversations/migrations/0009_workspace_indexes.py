"""The workspace's list (bench/workspace, issue 19).

- Views: an index per view family that matches the filter and the order ("mine", "unassigned"
  and the assignee filter newest first; "waiting" oldest first, a partial index).
- Search: Django's ``icontains`` is ``UPPER(text) LIKE UPPER(%s)`` on PostgreSQL, which the
  trigram index on ``text`` of 0004 cannot serve (EXPLAIN showed a sequential scan of every
  message). On PostgreSQL the trigram index is rebuilt on ``UPPER(text)`` and the unused one is
  dropped (one GIN index less to maintain on every message insert). Other databases skip it.
"""

from django.conf import settings
from django.db import migrations, models

UPPER_TRGM = "conversations_message_text_upper_trgm"
OLD_TRGM = "conversations_message_text_trgm"


def trigram_forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {UPPER_TRGM} "
        "ON conversations_message USING gin (UPPER(text) gin_trgm_ops)"
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_TRGM}")


def trigram_backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {OLD_TRGM} "
        "ON conversations_message USING gin (text gin_trgm_ops)"
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {UPPER_TRGM}")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_heal_turn_lease"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["org", "assignee", "-last_message_at"], name="conv_org_assignee_recent"
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("mode", "human"), ("status", "pending")),
                fields=["org", "handed_off_at", "id"],
                name="conv_org_waiting",
            ),
        ),
        migrations.RunPython(trigram_forwards, trigram_backwards),
    ]
