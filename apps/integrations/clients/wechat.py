"""Platform-neutral interface for WeChat automation platforms (GeWe, E云管家).

``device_id`` is the platform's handle for one logged-in WeChat "device": GeWe ``appId``
(stable across re-logins, reuse it) or E云 ``wId`` (changes on every login, store the new one).
All platform message ids and 64-bit ids are strings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from apps.integrations import platform_data

from .base import HttpClient
from .errors import BadResponse, IntegrationError, NotSupported


@dataclass(frozen=True)
class LoginQr:
    """A login QR: show ``qr_image`` (data URL) or render ``qr_data``/``qr_url``."""

    device_id: str
    uuid: str | None
    qr_data: str | None = None
    qr_image: str | None = None
    expires_in: int | None = None


@dataclass(frozen=True)
class LoginStatus:
    """``state`` is one of ``waiting`` (not scanned), ``scanned`` (confirm on phone),
    ``logged_in`` or ``expired`` (request a new QR with the same device id)."""

    state: str
    device_id: str
    wxid: str | None = None
    nickname: str | None = None
    expires_in: int | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SentMessage:
    to: str
    msg_id: str
    new_msg_id: str
    create_time: int
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ContactList:
    friends: list[str]
    chatrooms: list[str]
    ghs: list[str]


@dataclass(frozen=True)
class Contact:
    wxid: str
    nickname: str = ""
    remark: str = ""
    alias: str = ""
    sex: int | None = None
    avatar_url: str = ""
    label_ids: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class GroupMember:
    wxid: str
    nickname: str = ""
    display_name: str = ""
    inviter: str = ""


@dataclass(frozen=True)
class Label:
    label_id: str
    name: str


@dataclass(frozen=True)
class Moment:
    moment_id: str
    wxid: str
    nickname: str = ""
    create_time: int = 0
    raw: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MomentPage:
    items: list[Moment]
    max_id: str
    first_page_md5: str


def id_str(value: Any) -> str:
    """Ids to strings without ever passing through float (JSON ints above 2^53)."""
    if value is None:
        return ""
    if isinstance(value, float):
        raise ValueError("id arrived as a float; precision already lost")
    return str(value)


def sent_message(operation: str, data: Any, *, to: str, to_key: str) -> SentMessage:
    """A send's answer, shared by GeWe and E云管家. The platform has already accepted the message
    here, so its answer is data: an id that cannot be one (a float that lost precision, a list,
    an over-long value) is dropped and counted, and an odd ``createTime`` reads as 0, instead of
    raising and making a delivered message look failed (and be sent again)."""
    if not isinstance(data, dict):
        raise BadResponse(f"{operation}: no data in answer")
    created = data.get("createTime")
    return SentMessage(
        to=platform_data.ident(data.get(to_key), 128, field="send.to") or to,
        msg_id=platform_data.ident(data.get("msgId"), 64, field="send.msg_id"),
        new_msg_id=platform_data.ident(data.get("newMsgId"), 64, field="send.new_msg_id"),
        create_time=created
        if isinstance(created, int) and not isinstance(created, bool) and 0 <= created < 2**40
        else 0,
        raw=data,
    )


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class WeChatPlatformClient(HttpClient, ABC):
    """Operations every WeChat platform client offers.

    ``supports_moments`` tells callers whether ``post_moment_text``/``list_moments`` work.
    Sending ops are not idempotent: they are retried only when the request never left.
    """

    supports_moments = False

    @abstractmethod
    def set_callback(self, url: str) -> None: ...

    @abstractmethod
    def get_login_qr(self, device_id: str | None = None, *, wxid: str | None = None) -> LoginQr:
        """Create (``device_id`` None) or refresh a login QR. E云 needs the account ``wxid``
        on re-login; GeWe needs the old ``device_id``."""

    @abstractmethod
    def check_login(self, device_id: str, uuid: str | None = None) -> LoginStatus: ...

    @abstractmethod
    def reconnect(self, device_id: str) -> LoginStatus: ...

    @abstractmethod
    def dialog_login(self, device_id: str, *, wxid: str | None = None) -> LoginQr:
        """ "Confirm on phone" re-login; poll ``check_login`` with the returned ids."""

    @abstractmethod
    def logout(self, device_id: str) -> None: ...

    @abstractmethod
    def is_online(self, device_id: str) -> bool: ...

    @abstractmethod
    def send_text(
        self, device_id: str, to: str, text: str, at: Sequence[str] | None = None
    ) -> SentMessage:
        """Send text. In groups ``at`` lists wxids to mention; ``text`` must itself contain
        the ``@nickname`` text (GeWe ends each mention with U+2005)."""

    @abstractmethod
    def send_image(self, device_id: str, to: str, image_url: str) -> SentMessage: ...

    @abstractmethod
    def send_file(self, device_id: str, to: str, file_url: str, file_name: str) -> SentMessage: ...

    @abstractmethod
    def send_link(
        self, device_id: str, to: str, *, title: str, description: str, url: str, thumb_url: str
    ) -> SentMessage: ...

    @abstractmethod
    def send_voice(
        self, device_id: str, to: str, voice_url: str, duration_ms: int
    ) -> SentMessage: ...

    @abstractmethod
    def list_contacts(self, device_id: str) -> ContactList: ...

    @abstractmethod
    def get_contacts_brief(self, device_id: str, wxids: Sequence[str]) -> list[Contact]: ...

    @abstractmethod
    def get_contacts_detail(self, device_id: str, wxids: Sequence[str]) -> list[Contact]: ...

    @abstractmethod
    def list_group_members(self, device_id: str, chatroom_id: str) -> list[GroupMember]: ...

    @abstractmethod
    def accept_friend(self, device_id: str, *, v3: str, v4: str, scene: int) -> None:
        """Accept a friend request using the ids from its callback (E云: v1/v2)."""

    @abstractmethod
    def add_contact(
        self, device_id: str, *, v3: str, v4: str, scene: int, content: str = ""
    ) -> None: ...

    @abstractmethod
    def list_labels(self, device_id: str) -> list[Label]: ...

    @abstractmethod
    def add_label(self, device_id: str, name: str) -> Label: ...

    def post_moment_text(self, device_id: str, content: str) -> Moment:
        raise NotSupported(f"{self.service} client has no Moments support")

    # -- media (issue 20) ----------------------------------------------------------------

    # Moments kinds the platform can post ("text", "image", "link"); callers refuse others up
    # front instead of accepting a post that can only fail.
    moment_kinds: frozenset[str] = frozenset()
    # At most this many images in one image Moment (WeChat's nine).
    moment_max_images = 9

    def send_video(
        self, device_id: str, to: str, video_url: str, *, thumb_url: str, duration_s: int
    ) -> SentMessage:
        raise NotSupported(f"{self.service} client cannot send videos")

    def download_media(
        self, device_id: str, *, kind: str, msg_id: str, xml: str, meta: dict
    ) -> str:
        """The URL of a received image / voice / video / file (the platform's download API)."""
        raise NotSupported(f"{self.service} client cannot download media")

    def post_moment_images(self, device_id: str, content: str, image_urls: Sequence[str]) -> Moment:
        raise NotSupported(f"{self.service} client cannot post image Moments")

    def post_moment_link(
        self,
        device_id: str,
        content: str,
        *,
        title: str,
        description: str,
        url: str,
        thumb_url: str,
    ) -> Moment:
        raise NotSupported(f"{self.service} client cannot post link Moments")

    def fetch_media(
        self, url: str, *, max_bytes: int, timeout: tuple[float, float] | None = None
    ) -> bytes:
        """GET the bytes of a platform download URL (absolute), at most ``max_bytes``; one
        recorded call ``media_fetch``. 5xx / transport errors are retryable, 4xx are not."""
        import time

        from .base import transport_error
        from .errors import InvalidRequest

        started = time.monotonic()
        response = None
        try:
            try:
                response = self.session.get(url, timeout=timeout or self.timeout, stream=True)
            except requests.RequestException as exc:
                raise transport_error(exc) from None
            try:
                if response.status_code >= 400:
                    HttpClient.check_response(self, response)
                length = int(response.headers.get("Content-Length") or 0)
                if length > max_bytes:
                    raise InvalidRequest(
                        f"media too large ({length} bytes)", status=response.status_code
                    )
                chunks, size = [], 0
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidRequest(f"media too large (over {max_bytes} bytes)")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise transport_error(exc) from None
            finally:
                response.close()
        except IntegrationError as exc:
            self._record("media_fetch", response, exc, started, 1)
            raise
        self._record("media_fetch", response, None, started, 1)
        return b"".join(chunks)

    def list_moments(self, device_id: str, max_id: str = "0") -> MomentPage:
        raise NotSupported(f"{self.service} client has no Moments support")
