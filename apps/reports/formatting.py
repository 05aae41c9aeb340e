"""Figures as people read them (the console page and the dashboard card)."""

from __future__ import annotations

from django.utils.translation import gettext as _


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 45 秒, 3 分 20 秒, 2 小时 5 分."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return _("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
