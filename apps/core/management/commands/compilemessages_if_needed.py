"""Compile the shipped translation catalogues when a .po is newer than its .mo (needs msgfmt)."""

import shutil

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run compilemessages only where a .po file changed (skipped without GNU gettext)."

    def handle(self, *args, **options):
        stale = [
            po
            for locale_dir in settings.LOCALE_PATHS
            for po in locale_dir.glob("*/LC_MESSAGES/*.po")
            if not po.with_suffix(".mo").exists()
            or po.stat().st_mtime > po.with_suffix(".mo").stat().st_mtime
        ]
        if stale and shutil.which("msgfmt"):
            call_command("compilemessages", verbosity=0)
