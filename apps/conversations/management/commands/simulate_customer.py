"""``manage.py simulate_customer "你好" [--from WXID|NAME] [--group ID|NAME] [--account ..]``:
a simulated customer writes through the platform simulator (emit -> real webhook -> the loop);
with ``--wait`` the command also waits for the AI's answer and prints it."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from apps.conversations.models import Conversation, Message
from apps.conversations.simulate import customer_message_simulate
from apps.core.exceptions import ApplicationError
from apps.orgs.models import Organization


class Command(BaseCommand):
    help = "Make a simulated customer write to a WeChat account (through the simulator)."

    def add_arguments(self, parser):
        parser.add_argument("text", help="What the customer writes.")
        parser.add_argument("--from", dest="from_wxid", help="Friend's wxid, remark or nickname.")
        parser.add_argument("--group", help="Write in this group (wxid or name).")
        parser.add_argument("--account", help="Account id, name, wxid or device id.")
        parser.add_argument("--org", default="demo", help="Organisation slug (default: demo).")
        parser.add_argument(
            "--no-mention", action="store_true", help="In a group, do not @-mention the account."
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Wait up to SECONDS for the reply to be sent and print it.",
        )

    def handle(self, *args, text, from_wxid, group, account, org, no_mention, wait, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with slug {org!r} (run `manage.py seed_demo`).")
        started = time.monotonic()
        before = (
            Message.objects.filter(org=organization).order_by("-id").values_list("id", flat=True)
        )
        last_id = before.first() or 0
        try:
            sent = customer_message_simulate(
                org=organization,
                text=text,
                account=account,
                from_wxid=from_wxid,
                group=group,
                mention=not no_mention,
            )
        except ApplicationError as exc:
            details = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from None
        where = f"group {sent.chat_wxid}" if sent.is_group else "a private chat"
        self.stdout.write(
            f"{sent.sender_wxid} wrote in {where} to {sent.account.name}: {sent.text}"
        )
        if wait <= 0:
            self.stdout.write("Open the workspace to watch the answer arrive.")
            return
        reply = self._wait_for_reply(organization, sent, last_id, started + wait)
        elapsed = time.monotonic() - started
        if reply is None:
            conversation = Conversation.objects.filter(
                org=organization, account=sent.account, contact__wxid=sent.chat_wxid
            ).first()
            state = (
                f" (conversation {conversation.mode}/{conversation.status})" if conversation else ""
            )
            raise CommandError(f"No reply within {wait:g} s{state}.")
        self.stdout.write(
            self.style.SUCCESS(f"{reply.sender_kind} replied after {elapsed:.1f} s: {reply.text}")
        )

    def _wait_for_reply(self, org, sent, last_id: int, deadline: float) -> Message | None:
        while time.monotonic() < deadline:
            reply = (
                Message.objects.filter(
                    org=org,
                    id__gt=last_id,
                    account=sent.account,
                    conversation__contact__wxid=sent.chat_wxid,
                    direction=Message.Direction.OUTBOUND,
                    status=Message.Status.SENT,
                )
                .order_by("id")
                .first()
            )
            if reply is not None:
                return reply
            time.sleep(0.2)
        return None
