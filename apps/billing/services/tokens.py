"""Token estimates for text and chat messages, before a call is made."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any


# --- Token estimate -------------------------------------------------------------------------------
def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms (Chinese punctuation)
        or 0x20000 <= code <= 0x2FA1F  # CJK extensions
    )


_SPACES = re.compile(r"\s+")
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per chat message (OpenAI's published rule)
REPLY_PRIMING_TOKENS = 3
NON_TEXT_PART_TOKENS = 85  # an image or file part, at the providers' low-detail rate


def _text_tokens(text: str) -> int:
    """CJK characters count one token each (Qwen, DeepSeek and GPT-4o tokenisers use 0.6 to 1.3
    per character, so this errs high); other text counts one token per four characters, with
    runs of whitespace collapsed. Always at least 1 for non-empty text."""
    if not text:
        return 0
    text = _SPACES.sub(" ", text)
    cjk = sum(1 for char in text if _is_cjk(char))
    other = len(text) - cjk
    return max(1, cjk + math.ceil(other / 4))


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _text_tokens(content)
    if isinstance(content, Mapping):
        if isinstance(content.get("text"), str):
            return _text_tokens(content["text"])
        return NON_TEXT_PART_TOKENS
    if isinstance(content, Iterable):
        return sum(_content_tokens(part) for part in content)
    return _text_tokens(str(content))


def estimate_tokens(text_or_messages: str | Iterable[Mapping[str, Any]] | None) -> int:
    """A quick, provider-neutral token estimate of a prompt (the settled usage corrects it).

    A string is estimated as text; a list of chat messages (``{"role", "content"}``, content a
    string or a list of parts) adds 4 tokens per message and 3 for the reply. See
    ``_text_tokens`` for the per-character rule (good for Chinese and English).
    """
    if text_or_messages is None:
        return 0
    if isinstance(text_or_messages, str):
        return _text_tokens(text_or_messages)
    total = 0
    count = 0
    for message in text_or_messages:
        count += 1
        total += MESSAGE_OVERHEAD_TOKENS + _content_tokens(message.get("content"))
        if message.get("name"):
            total += _text_tokens(str(message["name"]))
    return total + (REPLY_PRIMING_TOKENS if count else 0)
