"""Data: map the first cut's values (status ``closed`` -> ``resolved``, sender ``contact`` ->
``customer``). Search: on PostgreSQL enable pg_trgm and add a trigram index on message text (used
by the inbox search for Chinese text, where word-based full-text search finds little); other
databases skip it."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


def forwards(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    Conversation.objects.filter(status="closed").update(status="resolved")
    Message.objects.filter(sender_kind="contact").update(sender_kind="customer")


def backwards(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    Conversation.objects.filter(status__in=["resolved", "snoozed"]).update(status="closed")
    Message.objects.filter(sender_kind="customer").update(sender_kind="contact")


def trigram_forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS conversations_message_text_trgm "
        "ON conversations_message USING gin (text gin_trgm_ops)"
    )


def trigram_backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS conversations_message_text_trgm")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_core_loop")]

    operations = [
        migrations.RunPython(forwards, backwards),
        TrigramExtension(),  # a no-op on databases other than PostgreSQL
        migrations.RunPython(trigram_forwards, trigram_backwards),
    ]
