"""OrgScopedAdmin scopes every relation once, for every admin class: a member of one
organisation never sees or attaches another organisation's rows through many-to-many choices,
foreign-key choices, list filters, autocomplete, raw-id lookups, inlines or saves."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import PermissionDenied
from django.forms.models import model_to_dict
from django.test import RequestFactory

from apps.billing.models import Budget
from apps.conversations.models import Conversation, Label
from apps.core.admin import OrgScopedAdmin
from apps.orgs.models import Role
from apps.sop.admin import SopStepInline
from apps.sop.models import SopPlan
from apps.wechat_accounts.models import Contact
from tests.accounts.factories import UserFactory
from tests.integrations.factories import AIAppFactory
from tests.orgs.factories import MembershipFactory
from tests.sop.conftest import make_plan
from tests.wechat_accounts.factories import ContactFactory, TagFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def rows(org, other_org, outsider):
    mine_account = WeChatAccountFactory(org=org, name="Own phone")
    theirs_account = WeChatAccountFactory(org=other_org, name="Rival phone")
    mine_contact = ContactFactory(org=org, account=mine_account, nickname="Own customer")
    theirs_contact = ContactFactory(org=other_org, account=theirs_account, nickname="Rival guy")
    conversation = Conversation.objects.create(org=org, account=mine_account, contact=mine_contact)
    return {
        "account": mine_account,
        "contact": mine_contact,
        "their_contact": theirs_contact,
        "tag": TagFactory(org=org, name="OwnTag"),
        "their_tag": TagFactory(org=other_org, name="RivalTag"),
        "label": Label.objects.create(org=org, name="OwnLabel"),
        "their_label": Label.objects.create(org=other_org, name="RivalLabel"),
        "ai_app": AIAppFactory(org=org, name="Own AI"),
        "their_ai_app": AIAppFactory(org=other_org, name="Rival AI"),
        "conversation": conversation,
        "outsider": outsider,
    }


def admin_request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    request.session = SessionStore()
    return request


def model_admin(model):
    return admin.site._registry[model]


def change_form(model, obj, user, **changes):
    request = admin_request(user)
    ma = model_admin(model)
    form_class = ma.get_form(request, obj, change=True)
    data = model_to_dict(obj, fields=list(form_class.base_fields))
    data.update(changes)
    return form_class(data=data, instance=obj)


def test_attaching_another_orgs_tag_to_a_contact_is_refused(staff, rows):
    form = change_form(Contact, rows["contact"], staff, tags=[rows["their_tag"].pk])
    assert not form.is_valid()
    assert "tags" in form.errors
    choices = form.fields["tags"].queryset
    assert rows["tag"] in choices and rows["their_tag"] not in choices
    assert change_form(Contact, rows["contact"], staff, tags=[rows["tag"].pk]).is_valid()


def test_conversation_labels_and_foreign_keys_offer_only_the_own_orgs_rows(staff, rows):
    form = change_form(Conversation, rows["conversation"], staff, labels=[rows["their_label"].pk])
    assert not form.is_valid() and "labels" in form.errors
    assert list(form.fields["labels"].queryset) == [rows["label"]]
    assert rows["their_ai_app"] not in form.fields["ai_app"].queryset
    assert rows["ai_app"] in form.fields["ai_app"].queryset
    assert staff in form.fields["assignee"].queryset
    assert rows["outsider"] not in form.fields["assignee"].queryset


def test_change_pages_do_not_name_another_orgs_tags_or_labels(client, staff, rows):
    client.force_login(staff)
    contact_page = client.get(f"/admin/wechat_accounts/contact/{rows['contact'].pk}/change/")
    assert contact_page.status_code == 200
    assert "OwnTag" in contact_page.content.decode()
    assert "RivalTag" not in contact_page.content.decode()
    page = client.get(f"/admin/conversations/conversation/{rows['conversation'].pk}/change/")
    assert page.status_code == 200
    assert "OwnLabel" in page.content.decode() and "RivalLabel" not in page.content.decode()


def test_list_filters_list_only_the_own_orgs_rows_and_hide_the_org_filter(
    client, staff, rows, other_org
):
    client.force_login(staff)
    body = client.get("/admin/wechat_accounts/contact/").content.decode()
    assert "Own phone" in body and "OwnTag" in body
    assert "Rival phone" not in body and "RivalTag" not in body
    body = client.get("/admin/conversations/conversation/").content.decode()
    assert "Rival phone" not in body and "RivalLabel" not in body
    assert "org" not in model_admin(Label).get_list_filter(admin_request(staff))
    body = client.get("/admin/conversations/label/").content.decode()
    assert "OwnLabel" in body and other_org.name not in body


def test_superusers_keep_every_choice_and_the_org_filter(client, rows, other_org):
    root = UserFactory(is_staff=True, is_superuser=True)
    assert "org" in model_admin(Label).get_list_filter(admin_request(root))
    form = change_form(Contact, rows["contact"], root)
    assert rows["their_tag"] in form.fields["tags"].queryset
    client.force_login(root)
    assert other_org.name in client.get("/admin/conversations/label/").content.decode()


def test_autocomplete_answers_with_the_own_orgs_rows_only(client, staff, rows):
    client.force_login(staff)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "conversations", "model_name": "conversation", "field_name": "labels"},
    )
    assert response.status_code == 200
    names = [row["text"] for row in response.json()["results"]]
    assert names == ["OwnLabel"]
    # Users are the platform's page: a member gets a select of their organisation's people.
    request = admin_request(staff)
    budget_admin = model_admin(Budget)
    assert "user" not in budget_admin.get_autocomplete_fields(request)
    user_field = budget_admin.get_form(request)().fields["user"]
    assert staff in user_field.queryset and rows["outsider"] not in user_field.queryset
    denied = client.get(
        "/admin/autocomplete/",
        {"app_label": "billing", "model_name": "budget", "field_name": "user"},
    )
    assert denied.status_code == 403


def test_raw_id_lookups_never_name_or_accept_another_orgs_row(staff, rows):
    class RawConversationAdmin(OrgScopedAdmin):
        raw_id_fields = ["contact"]

    ma = RawConversationAdmin(Conversation, admin.site)
    request = admin_request(staff)
    field = ma.formfield_for_foreignkey(Conversation._meta.get_field("contact"), request)
    assert isinstance(field.widget, ForeignKeyRawIdWidget)
    assert field.widget.label_and_url_for_value(rows["their_contact"].pk) == ("", "")
    label, _url = field.widget.label_and_url_for_value(rows["contact"].pk)
    assert "Own customer" in str(label)
    assert rows["their_contact"] not in field.queryset


def test_inlines_offer_only_the_own_orgs_rows(staff, rows, org, monkeypatch):
    plan = make_plan(org, [rows["account"]], name="Own plan")
    request = admin_request(staff)
    # Inline permissions are the console's concern; here only the choices matter.
    monkeypatch.setattr(SopStepInline, "has_view_or_change_permission", lambda *a, **k: True)
    inline = next(
        i
        for i in model_admin(SopPlan).get_inline_instances(request, plan)
        if i.model._meta.model_name == "sopstep"
    )
    fields = inline.get_formset(request, plan).form.base_fields
    assert rows["tag"] in fields["condition_tag"].queryset
    assert rows["their_tag"] not in fields["condition_tag"].queryset


def test_a_save_cannot_land_in_another_organisation(staff, rows, other_org):
    ma = model_admin(Label)
    request = admin_request(staff)

    class StubForm:
        def __init__(self, obj):
            self.obj = obj

        def save(self, commit=True):
            return self.obj

    with pytest.raises(PermissionDenied):
        ma.save_form(request, StubForm(Label(org=other_org, name="x")), change=False)
    saved = ma.save_form(request, StubForm(Label(name="y")), change=False)
    assert saved.org_id == rows["label"].org_id
