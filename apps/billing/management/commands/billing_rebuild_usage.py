"""Recompute the daily and monthly usage aggregates from the cost ledger."""

from django.core.management.base import BaseCommand, CommandError

from apps.billing import services
from apps.orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Recompute billing's daily/monthly usage sums from the ledger (after a bulk import, a "
        "time-zone change of the organisation, or to repair them)."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--org", help="Organisation slug or id.")
        target.add_argument("--all", action="store_true", help="Every organisation.")

    def handle(self, *args, **options):
        if options["all"]:
            orgs = Organization.objects.order_by("id")
        else:
            value = options["org"]
            lookup = {"id": int(value)} if value.isdigit() else {"slug": value}
            orgs = Organization.objects.filter(**lookup)
            if not orgs.exists():
                raise CommandError(f"No organisation {value!r}.")
        for org in orgs:
            rows = services.usage_rebuild(org=org)
            self.stdout.write(f"{org.slug}: {rows} daily rows")
