"""Print how often platform values were dropped or cut (``apps.integrations.platform_data``).

manage.py platform_data_report [--reset]
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.integrations import platform_data


class Command(BaseCommand):
    help = "Counts of platform values dropped or cut while storing them, by field."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="clear the counters afterwards")

    def handle(self, *args, **options):
        counts = platform_data.platform_data_counts()
        if not counts:
            self.stdout.write("no platform value was dropped or cut")
        for key in sorted(counts):
            self.stdout.write(f"{key}\t{counts[key]}")
        if options["reset"]:
            platform_data.platform_data_counts_reset()
