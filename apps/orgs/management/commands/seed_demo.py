"""Create (idempotently) the demo organisation and its admin user, and print the login."""

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import User
from apps.orgs.models import Membership, Organization, Role
from apps.orgs.services import organization_create


class Command(BaseCommand):
    help = "Create the demo organisation and an admin user (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="admin@example.com")
        parser.add_argument("--org-name", default="Demo Sales Co.")

    @transaction.atomic
    def handle(self, *args, email, org_name, **options):
        password_file = settings.VAR_DIR / "demo_admin_password"
        user = User.objects.filter(email=email).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(email=email, password=password, name="Demo Admin")
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
        else:
            password = (
                password_file.read_text().strip() if password_file.exists() else "(unchanged)"
            )
        org = Organization.objects.filter(slug="demo").first()
        if org is None:
            org = organization_create(name=org_name, owner=user)
            org.slug = "demo"
            org.save(update_fields=["slug"])
        Membership.objects.get_or_create(org=org, user=user, defaults={"role": Role.OWNER})
        # Other apps add their demo rows (simulator connections, AI apps) through this hook.
        from apps.core.demo import run_demo_seeders

        run_demo_seeders(org=org, owner=user, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Demo organisation: {org.name} (slug {org.slug})"))
        self.stdout.write(self.style.SUCCESS(f"Admin login: {email} / {password}"))
