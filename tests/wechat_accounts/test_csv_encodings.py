"""Contact and tag CSV imports accept what Excel writes in China (GBK/GB18030, UTF-8 with or
without BOM) and refuse binary with 400 (issue 18)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.wechat_accounts.models import Contact, Tag

pytestmark = pytest.mark.django_db

TAGS = "name,color\n高意向客户,#ff0000\n老客户,\n"
CONTACTS = "account,wxid,nickname,tags\n,wxid_zhang,张三,高意向\n"


def _upload(api_client, path, data: bytes, **extra):
    upload = SimpleUploadedFile("data.csv", data, content_type="text/csv")
    return api_client.post(path, {"file": upload, **extra}, format="multipart")


@pytest.mark.parametrize(
    "encoded",
    [
        TAGS.encode("utf-8"),
        b"\xef\xbb\xbf" + TAGS.encode("utf-8"),
        TAGS.encode("gbk"),
        TAGS.encode("gb18030"),
    ],
    ids=["utf-8", "utf-8-bom", "gbk", "gb18030"],
)
def test_tag_import_accepts_excel_encodings(api_client, org, encoded):
    response = _upload(api_client, "/api/v1/tags/import/", encoded)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 2
    assert set(Tag.objects.filter(org=org).values_list("name", flat=True)) == {
        "高意向客户",
        "老客户",
    }


def test_contact_import_accepts_gbk(api_client, online_account):
    response = _upload(
        api_client,
        "/api/v1/contacts/import/",
        CONTACTS.encode("gbk"),
        account=online_account.pk,
    )
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 1
    assert Contact.objects.get(account=online_account, wxid="wxid_zhang").nickname == "张三"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
        bytes(range(256)) * 4,
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
    ],
    ids=["png", "all-bytes", "xlsx-zip"],
)
def test_binary_upload_is_refused_with_400(api_client, org, data):
    for path in ("/api/v1/tags/import/", "/api/v1/contacts/import/"):
        response = _upload(api_client, path, data)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error"]["code"] == "invalid_file"
    assert not Tag.objects.filter(org=org).exists()
