import csv
import io

import pytest

from apps.core.csv_export import safe_cell, writer
from apps.wechat_accounts import services
from apps.wechat_accounts.models import Contact
from tests.wechat_accounts.factories import WeChatAccountFactory


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("-12.50", "-12.50"),
        ("客户小王", "客户小王"),
        (42, 42),
        ("", ""),
    ],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_writer_sanitises_every_cell():
    out = io.StringIO()
    writer(out).writerow(["=1+1", "ok", -3])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'=1+1", "ok", "-3"]


@pytest.mark.django_db
def test_contacts_export_neutralises_a_formula_nickname(org):
    account = WeChatAccountFactory(org=org)
    services.contact_upsert(org=org, account=account, wxid="wxid_evil", nickname="=1+1")
    data = services.contacts_export_csv(queryset=Contact.objects.filter(org=org))
    row = next(r for r in csv.DictReader(io.StringIO(data)) if r["wxid"] == "wxid_evil")
    assert row["nickname"] == "'=1+1"
