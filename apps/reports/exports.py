"""The CSV table of each report (through apps.core's formula-safe writer)."""

from __future__ import annotations

import io

from django.utils.translation import gettext as _

from apps.core import csv_export


def _table(name: str, data: dict) -> tuple[list[str], list[list]]:
    if name == "overview":
        head = [
            _("Day"),
            _("Customer messages"),
            _("AI messages"),
            _("Agent messages"),
            _("Handoffs"),
            _("Resolved"),
        ]
        rows = [
            [
                r["day"],
                r["inbound_messages"],
                r["ai_messages"],
                r["agent_messages"],
                r["handoffs"],
                r["conversations_resolved"],
            ]
            for r in data["series"]
        ]
    elif name == "conversations":
        head = [
            _("Day"),
            _("Customer messages"),
            _("Conversations started"),
            _("Resolved"),
            _("AI messages"),
            _("Handoffs"),
        ]
        rows = [
            [
                r["day"],
                r["inbound_messages"],
                r["conversations_started"],
                r["conversations_resolved"],
                r["ai_messages"],
                r["handoffs"],
            ]
            for r in data["series"]
        ]
    elif name == "agents":
        head = [
            _("Agent"),
            _("Conversations handled"),
            _("Messages sent"),
            _("First response p50 (s)"),
            _("First response p90 (s)"),
            _("Wait after handoff p50 (s)"),
            _("Wait after handoff p90 (s)"),
            _("Assigned open conversations"),
            _("Cost (¥)"),
        ]
        rows = [
            [
                r["agent"],
                r["conversations_handled"],
                r["messages_sent"],
                r["first_response_p50"],
                r["first_response_p90"],
                r["handoff_wait_p50"],
                r["handoff_wait_p90"],
                r["assigned_open"],
                r["cost"],
            ]
            for r in data["rows"]
        ]
    elif name == "accounts":
        head = [
            _("WeChat account"),
            _("Messages in"),
            _("Messages out"),
            _("AI messages"),
            _("Agent messages"),
            _("SOP messages"),
            _("Send failures"),
            _("Delivery unknown"),
            _("Handoffs"),
            _("Hours offline"),
            _("Rate-limit deferrals"),
            _("Cost (¥)"),
        ]
        rows = [
            [
                r["account"],
                r["messages_in"],
                r["messages_out"],
                r["ai_messages"],
                r["agent_messages"],
                r["sop_messages"],
                r["send_failures"],
                r["delivery_unknown"],
                r["handoffs"],
                r["offline_hours"],
                r["rate_limit_deferrals"],
                r["cost"],
            ]
            for r in data["rows"]
        ]
    elif name == "sop":
        head = [
            _("Plan"),
            _("Step"),
            _("Sent"),
            _("Failed"),
            _("Skipped"),
            _("Replied within 24 h"),
            _("Reply rate"),
        ]
        rows = [
            [
                r["plan"],
                r["step"],
                r["sent"],
                r["failed"],
                r["skipped"],
                r["replied"],
                r["reply_rate"],
            ]
            for r in data["rows"]
        ]
    else:  # cost
        head = [_("Day"), _("AI cost (¥)"), _("Platform cost (¥)")]
        rows = [[r["day"], r["ai_cost"], r["platform_cost"]] for r in data["series"]]
    return head, rows


def report_csv(name: str, data: dict) -> str:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # Excel and WPS read UTF-8 Chinese only with the byte-order mark
    writer = csv_export.writer(buffer)
    head, rows = _table(name, data)
    writer.writerow(head)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return buffer.getvalue()
