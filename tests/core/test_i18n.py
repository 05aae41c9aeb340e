"""The Simplified Chinese (zh-hans) catalogue: complete, compiled and served by the API."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from apps.billing.models import Budget
from apps.orgs.models import Organization, Role
from tests.accounts.factories import UserFactory

PO_PATH = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")

_FIELD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+"(.*)"\s*$')
_PLACEHOLDER = re.compile(
    r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%[-#0 +]*\d*(?:\.\d+)?[sdifr]|%%"
)
_BRACE = re.compile(r"\{[a-z_]+\}")


def _unescape(value: str) -> str:
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), value
    )


def _parse_po(path: Path) -> list[dict]:
    """Entries of a .po file as dicts: flags, msgid, msgid_plural?, msgstr / msgstr[n]."""
    entries = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8").strip()):
        entry: dict = {"flags": set()}
        current = None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry["obsolete"] = True
            elif line.startswith("#,"):
                entry["flags"].update(f.strip() for f in line[2:].split(","))
            elif line.startswith("#"):
                continue
            elif match := _FIELD.match(line):
                current = match.group(1)
                entry[current] = _unescape(match.group(2))
            elif line.startswith('"') and current:
                entry[current] += _unescape(line.strip()[1:-1])
        if "msgid" in entry and not entry.get("obsolete"):
            entries.append(entry)
    return entries


def _translations(entry: dict) -> list[str]:
    return [value for key, value in entry.items() if key.startswith("msgstr")]


@pytest.fixture(scope="module")
def po_entries():
    entries = _parse_po(PO_PATH)
    assert entries[0]["msgid"] == "", "the catalogue starts with its header"
    return entries


def test_catalogue_header_declares_chinese_plural_forms(po_entries):
    header = po_entries[0]["msgstr"]
    assert "Plural-Forms: nplurals=1; plural=0;" in header
    assert "charset=UTF-8" in header
    assert "fuzzy" not in po_entries[0]["flags"]


def test_catalogue_has_no_untranslated_or_fuzzy_entries(po_entries):
    messages = po_entries[1:]
    assert len(messages) > 100
    untranslated = [e["msgid"] for e in messages if not all(_translations(e))]
    fuzzy = [e["msgid"] for e in messages if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []
    # Plural entries carry exactly one form (nplurals=1).
    for entry in messages:
        if "msgid_plural" in entry:
            assert [k for k in entry if k.startswith("msgstr")] == ["msgstr[0]"], entry["msgid"]


def test_catalogue_keeps_every_placeholder(po_entries):
    for entry in po_entries[1:]:
        for text in _translations(entry):
            if "python-format" in entry["flags"]:
                assert sorted(_PLACEHOLDER.findall(text)) == sorted(
                    _PLACEHOLDER.findall(entry["msgid"])
                ), entry["msgid"]
            if "python-brace-format" in entry["flags"]:
                assert sorted(_BRACE.findall(text)) == sorted(_BRACE.findall(entry["msgid"])), (
                    entry["msgid"]
                )


def test_compiled_catalogue_matches_the_source(po_entries):
    """The committed .mo was compiled from the committed .po (compilemessages was re-run)."""
    with MO_PATH.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in po_entries[1:]:
        if "msgid_plural" in entry:
            assert compiled.ngettext(entry["msgid"], entry["msgid_plural"], 1) == entry["msgstr[0]"]
        elif "msgctxt" in entry:
            assert compiled.pgettext(entry["msgctxt"], entry["msgid"]) == entry["msgstr"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"], entry["msgid"]


def test_known_strings_translate_to_chinese():
    with translation.override("zh-hans"):
        assert translation.gettext("E-mail or password is incorrect.") == "邮箱或密码错误。"
        assert str(Organization._meta.verbose_name) == "组织"
        assert str(Budget._meta.verbose_name) == "预算"
        assert str(Role.OWNER.label) == "所有者"
        assert translation.gettext("%(name)s is down") % {"name": "GeWe"} == "GeWe 不可用"
    with translation.override("en"):
        assert str(Organization._meta.verbose_name) == "organization"


@pytest.mark.django_db
def test_api_error_follows_accept_language(anon_client):
    user = UserFactory(email="lang@example.com")
    url = reverse("auth-login")
    body = {"email": user.email, "password": "wrong-password"}

    response = anon_client.post(url, body, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "邮箱或密码错误。"
    assert response["Content-Language"] == "zh-hans"

    response = anon_client.post(url, body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "E-mail or password is incorrect."


@pytest.mark.django_db
def test_api_validation_error_in_chinese(anon_client):
    response = anon_client.post(
        reverse("auth-login"),
        {"email": "x@example.com"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9",
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "请求无效。"
