"""Backfill intent / sentiment of customer messages of one organisation over a date range.

    manage.py analysis_backfill --org acme --from 2026-03-01 --to 2026-03-08 [--mode intent]
                                [--redo] [--batch-size 100]

Calls go through the batch client with at most ``CONVERSATION_ANALYSIS_BATCH_CONCURRENCY``
(10) in flight; each call is metered in the ledger (request id ``analysis:<kind>:<message>``,
so a re-run never bills twice) and logged in the call log. Progress is printed per batch.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date

from apps.conversations import ai_settings
from apps.conversations.analysis import analysis_backfill
from apps.orgs.models import Organization


def _day(value: str, name: str):
    day = parse_date(value or "")
    if day is None:
        raise CommandError(f"--{name} must be a date like 2026-03-01")
    return day


class Command(BaseCommand):
    help = "Analyse intent and sentiment of an organisation's customer messages in a date range."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organisation slug or id")
        parser.add_argument("--from", dest="start", required=True, help="first day (inclusive)")
        parser.add_argument("--to", dest="end", required=True, help="last day (inclusive)")
        parser.add_argument(
            "--mode",
            choices=[ai_settings.ANALYSIS_INTENT, ai_settings.ANALYSIS_INTENT_SENTIMENT],
            help="default: the organisation's analysis mode (intent and sentiment when off)",
        )
        parser.add_argument("--redo", action="store_true", help="also messages with a result")
        parser.add_argument("--batch-size", type=int, default=100)

    def handle(self, *args, **options):
        key = options["org"]
        org = Organization.objects.filter(slug=key).first()
        if org is None and str(key).isdigit():
            org = Organization.objects.filter(pk=int(key)).first()
        if org is None:
            raise CommandError(f"no organisation {key!r}")
        first, last = _day(options["start"], "from"), _day(options["end"], "to")
        if last < first:
            raise CommandError("--to is before --from")
        tz = org.tzinfo if hasattr(org, "tzinfo") else timezone.get_current_timezone()
        start = timezone.make_aware(datetime.combine(first, time.min), tz)
        end = timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min), tz)

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"{done}/{total}")

        result = analysis_backfill(
            org=org,
            start=start,
            end=end,
            mode=options["mode"],
            redo=options["redo"],
            batch_size=max(1, options["batch_size"]),
            progress=progress,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"analysed {result.analysed} of {result.total} messages ({result.failed} failed)"
            )
        )
