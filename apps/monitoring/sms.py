"""Pluggable SMS backends for urgent notifications.

``settings.NOTIFICATIONS_SMS_BACKEND`` names the class (dotted path). A backend has one method,
``send(*, to: str, text: str) -> None``, that raises ``SMSTransientError`` for failures worth a
retry and any other exception for permanent ones.

- ``ConsoleSMSBackend`` (default): logs the text (logger ``apps.monitoring.sms``); nothing is sent.
- ``LocmemSMSBackend``: appends to ``LocmemSMSBackend.outbox`` (tests).

A real provider (Aliyun SMS, Tencent Cloud SMS ...) is a small class with the same ``send``;
point the setting at it. The phone numbers come from the organisation's settings:
``Organization.settings["notifications"]["sms_numbers"]`` (a list of E.164 strings).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SMSTransientError(Exception):
    """The provider failed in a way worth retrying (timeout, 5xx, rate limit)."""


class BaseSMSBackend:
    def send(self, *, to: str, text: str) -> None:
        raise NotImplementedError


class ConsoleSMSBackend(BaseSMSBackend):
    def send(self, *, to: str, text: str) -> None:
        logger.info("SMS to %s: %s", to, text)


class LocmemSMSBackend(BaseSMSBackend):
    outbox: list[dict[str, str]] = []

    def send(self, *, to: str, text: str) -> None:
        LocmemSMSBackend.outbox.append({"to": to, "text": text})


def get_sms_backend() -> BaseSMSBackend:
    return import_string(settings.NOTIFICATIONS_SMS_BACKEND)()
