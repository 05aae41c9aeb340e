"""Media behaviour shared by the WeChat platform simulators (GeWe, E云管家).

- **Media sends:** like the real platforms, the simulator fetches the URL it is given (our signed
  URL) over HTTP; ``fetched`` records every fetch (status, size, SHA-256, the bytes), and a
  fetch that fails makes the send fail with the platform's error, as the real server would.
- **Received media:** ``store`` keeps the bytes of an image / voice / video / file the simulator
  "received", keyed by the message id it posted; the download APIs answer a URL on the
  simulator itself (``GET /files/<token>``) that serves them.
- **Faults:** downloads are ordinary API paths (``/message/downloadImage``, ``/getMsgImg``...)
  and ``/files/``; inject faults on them like on any path.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
import zlib
from typing import Any

import requests

from .core import Reply, SimRequest

FILES_PREFIX = "/files/"


def sample_png(seed: int = 0) -> bytes:
    """A real 4x4 PNG (different bytes per seed)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + bytes((seed + x * 7) % 256 for x in range(12)) for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


SAMPLES = {
    "image": (sample_png, "image/png", "image.png"),
    "voice": (
        lambda seed=0: b"\x02#!SILK_V3" + bytes((seed + i) % 256 for i in range(400)),
        "audio/silk",
        "voice.silk",
    ),
    "video": (
        lambda seed=0: (
            b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
            + bytes((seed + i) % 256 for i in range(512))
        ),
        "video/mp4",
        "video.mp4",
    ),
    "file": (
        lambda seed=0: b"%PDF-1.4\n% sample " + str(seed).encode() + b"\n%%EOF\n",
        "application/pdf",
        "brochure.pdf",
    ),
}


class SimMedia:
    """The media state of one simulator (reset with it)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.reset()

    def reset(self) -> None:
        # strict: a media send whose URL cannot be fetched fails, as on the real platform.
        # Off by default so tests that send placeholder URLs keep working; media tests and the
        # demo switch it on (``POST /__sim__/media`` {"strict": true}).
        self.strict = False
        self.fetched: list[dict] = []
        self.files: dict[str, dict] = {}  # token -> {data, content_type, name}
        self.by_msg_id: dict[str, str] = {}  # received message id -> token

    # -- sends: fetch the URL the client gave ---------------------------------------------

    def fetch(self, url: str, *, purpose: str, timeout: float = 10.0) -> dict:
        entry: dict[str, Any] = {"url": url, "purpose": purpose, "status": None, "error": None}
        try:
            response = requests.get(url, timeout=timeout)
            entry["status"] = response.status_code
            if response.status_code == 200:
                entry["body"] = response.content
                entry["size"] = len(response.content)
                entry["sha256"] = hashlib.sha256(response.content).hexdigest()
                entry["content_type"] = response.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            entry["error"] = type(exc).__name__
        self.fetched.append(entry)
        return entry

    def refused(self, url: str, *, purpose: str) -> bool:
        """Fetch ``url``; True when the send must fail (strict mode and the fetch failed)."""
        entry = self.fetch(url, purpose=purpose)
        return self.strict and entry["status"] != 200

    # -- received media ------------------------------------------------------------------

    def store(
        self, msg_id: Any, kind: str, data: bytes | None = None, *, seed: int = 0, name: str = ""
    ) -> dict:
        make, content_type, default_name = SAMPLES[kind]
        data = make(seed) if data is None else data
        token = uuid.uuid4().hex
        self.files[token] = {
            "data": data,
            "content_type": content_type,
            "name": name or default_name,
        }
        self.by_msg_id[str(msg_id)] = token
        return {"token": token, "size": len(data), "md5": hashlib.md5(data).hexdigest()}  # noqa: S324 - the platforms' own checksum

    def url_for_msg(self, msg_id: Any) -> str | None:
        token = self.by_msg_id.get(str(msg_id))
        return None if token is None else f"{self.sim.base_url}{FILES_PREFIX}{token}"

    def path_for_msg(self, msg_id: Any) -> str | None:
        """Relative download path (GeWe answers ``fileUrl`` relative to its download base)."""
        token = self.by_msg_id.get(str(msg_id))
        return None if token is None else f"{token}"

    def serve(self, request: SimRequest) -> Reply:
        token = request.path.rsplit("/", 1)[-1]
        item = self.files.get(token)
        if item is None:
            return Reply(404, "not found", content_type="text/plain")
        return Reply(200, item["data"], content_type=item["content_type"])


def decode_data(value: str | None) -> bytes | None:
    """Control endpoints pass bytes as base64 (``data_base64``)."""
    return None if value in (None, "") else base64.b64decode(value)
