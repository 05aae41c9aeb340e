"""Create (idempotently) the demo organisation, its three logins and every app's demo rows, and
print the logins (also kept in ``var/demo_logins.json``)."""

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import User
from apps.orgs.models import Membership, Organization, Role
from apps.orgs.services import organization_create

# email, name, role; the owner is also a superuser (the operator of a local install).
DEMO_USERS = [
    ("admin@example.com", "王总（店主）", Role.OWNER),
    ("agent@example.com", "小李（客服）", Role.AGENT),
    ("viewer@example.com", "老赵（只读）", Role.VIEWER),
]


def demo_logins_path():
    return settings.VAR_DIR / "demo_logins.json"


def read_demo_logins() -> list[dict]:
    """The logins ``seed_demo`` created, as printed (empty before the first run)."""
    path = demo_logins_path()
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except ValueError:
        return []


class Command(BaseCommand):
    help = "Create the demo organisation, an owner, an agent and a viewer login (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default=DEMO_USERS[0][0], help="The owner's e-mail.")
        parser.add_argument("--org-name", default="Demo Sales Co.")

    @transaction.atomic
    def handle(self, *args, email, org_name, **options):
        known = {row["email"]: row["password"] for row in read_demo_logins()}
        legacy = settings.VAR_DIR / "demo_admin_password"
        if legacy.exists() and email not in known:
            known[email] = legacy.read_text().strip()
        users = [(email, DEMO_USERS[0][1], Role.OWNER), *DEMO_USERS[1:]]
        logins: list[dict] = []
        org = Organization.objects.filter(slug="demo").first()
        for address, name, role in users:
            user = User.objects.filter(email=address).first()
            password = known.get(address, "")
            if user is None:
                password = secrets.token_urlsafe(12)
                if role == Role.OWNER:
                    user = User.objects.create_superuser(
                        email=address, password=password, name=name
                    )
                else:
                    # Every member signs in to the console; the role decides what they see.
                    user = User.objects.create_user(email=address, password=password, name=name)
            if org is None:
                org = organization_create(name=org_name, owner=user)
                org.slug = "demo"
                org.save(update_fields=["slug"])
            Membership.objects.get_or_create(org=org, user=user, defaults={"role": role})
            if user.default_org_id is None:
                user.default_org = org
                user.save(update_fields=["default_org"])
            logins.append(
                {"email": address, "password": password or "(unchanged)", "role": str(role)}
            )
        self._keep(logins, legacy)
        owner = User.objects.get(email=email)
        # Every app adds its demo rows (accounts, contacts, conversations, ...) through this hook.
        from apps.core.demo import run_demo_seeders

        run_demo_seeders(org=org, owner=owner, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Demo organisation: {org.name} (slug {org.slug})"))
        for row in logins:
            self.stdout.write(
                self.style.SUCCESS(f"  {row['role']:7s} login: {row['email']} / {row['password']}")
            )

    def _keep(self, logins: list[dict], legacy) -> None:
        path = demo_logins_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(logins, ensure_ascii=False, indent=2))
        path.chmod(0o600)
        legacy.write_text(logins[0]["password"])
        legacy.chmod(0o600)
