"""Recompute the reports of a range of days from the raw rows (same code as the incremental
refresh, so the numbers are the same)."""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from apps.orgs.models import Organization
from apps.reports import services


class Command(BaseCommand):
    help = "Recompute report figures for a date range (local days of each organisation)."

    def add_arguments(self, parser):
        parser.add_argument("--org", type=int, action="append", help="organisation id (repeat)")
        parser.add_argument("--start", help="first day, YYYY-MM-DD (default: 90 days ago)")
        parser.add_argument("--end", help="last day, YYYY-MM-DD (default: today)")

    def handle(self, *args, **options):
        orgs = Organization.objects.order_by("id")
        if options["org"]:
            orgs = orgs.filter(id__in=options["org"])
            if orgs.count() != len(set(options["org"])):
                raise CommandError("Unknown organisation id.")
        for org in orgs:
            today = services.local_day(org, dt.datetime.now(dt.UTC))
            try:
                end = dt.date.fromisoformat(options["end"]) if options["end"] else today
                start = (
                    dt.date.fromisoformat(options["start"])
                    if options["start"]
                    else end - dt.timedelta(days=89)
                )
            except ValueError as exc:
                raise CommandError("Give dates as YYYY-MM-DD.") from exc
            if start > end:
                raise CommandError("--start is after --end.")
            began = time.monotonic()
            result = services.range_rebuild(org=org, start=start, end=end)
            self.stdout.write(
                f"{org.name}: {start}..{end}: {result['conversations']} conversations, "
                f"{result['days']} days, {result['rows']} rows in "
                f"{time.monotonic() - began:.1f} s"
            )
