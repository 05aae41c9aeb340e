"""The console page "模拟客户消息": a simulated customer writes to one of the organisation's
WeChat accounts through the platform simulator (``apps.conversations.simulate``), and the page
shows the conversation until the answer arrives (a plain meta refresh, no script), with a link
to the same conversation in the workspace."""

from __future__ import annotations

import time

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.conversations import simulate
from apps.conversations.models import Conversation, Message
from apps.core.console import console_membership
from apps.core.exceptions import ApplicationError
from apps.orgs.models import Role, role_at_least
from apps.wechat_accounts.models import Contact

# How long the page keeps refreshing while it waits for the answer.
WAIT_SECONDS = 30
CHOICES_LIMIT = 300


def _membership(request):
    """The console's active organisation (chosen in its header), else 404."""
    membership = console_membership(request)
    if membership is None:
        raise Http404
    return membership


class SimulateCustomerForm(forms.Form):
    account = forms.ChoiceField(label=gettext_lazy("WeChat account"))
    customer = forms.ChoiceField(
        label=gettext_lazy("Customer"),
        help_text=gettext_lazy("The friend who writes (in a group: the member who writes)."),
    )
    group = forms.ChoiceField(label=gettext_lazy("Group"), required=False)
    mention = forms.BooleanField(
        label=gettext_lazy("@-mention the account in the group"),
        required=False,
        initial=True,
        help_text=gettext_lazy("Groups are answered when the account is @-mentioned."),
    )
    text = forms.CharField(
        label=gettext_lazy("Message"),
        max_length=2000,
        initial="你好，想了解一下实木地板，三居室大概多少钱？",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, org, account_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        accounts = list(simulate.simulated_accounts(org=org))
        self.accounts = {str(a.pk): a for a in accounts}
        self.fields["account"].choices = [
            (str(a.pk), f"{a.name} ({a.get_status_display()})") for a in accounts
        ]
        account = self.accounts.get(str(account_id or "")) or (accounts[0] if accounts else None)
        self.account = account
        friends, groups = [], []
        if account is not None:
            contacts = Contact.objects.filter(account=account, removed_at__isnull=True)
            friends = list(contacts.filter(kind=Contact.Kind.FRIEND).order_by("id")[:CHOICES_LIMIT])
            groups = list(contacts.filter(kind=Contact.Kind.GROUP).order_by("id")[:CHOICES_LIMIT])
            self.fields["account"].initial = str(account.pk)
            default = simulate.default_customer(account)
            if default is not None:
                self.fields["customer"].initial = default.wxid
        self.fields["customer"].choices = [(c.wxid, c.display_name) for c in friends]
        self.fields["group"].choices = [("", _("— private chat —"))] + [
            (g.wxid, g.display_name) for g in groups
        ]


def simulate_customer_view(request):
    membership = _membership(request)
    if not (request.user.is_superuser or role_at_least(membership.role, Role.AGENT)):
        raise Http404
    org = membership.org
    account_id = request.POST.get("account") or request.GET.get("account")
    form = SimulateCustomerForm(request.POST or None, org=org, account_id=account_id)
    if request.method == "POST" and form.is_valid():
        last_id = (
            Message.objects.filter(org=org).order_by("-id").values_list("id", flat=True).first()
        )
        try:
            sent = simulate.customer_message_simulate(
                org=org,
                text=form.cleaned_data["text"],
                account=form.account.pk,
                from_wxid=form.cleaned_data["customer"],
                group=form.cleaned_data["group"] or None,
                mention=form.cleaned_data["mention"],
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("The customer's message was sent through the simulator."))
            query = (
                f"?account={sent.account.pk}&chat={sent.chat_wxid}"
                f"&after={last_id or 0}&at={int(time.time())}"
            )
            return HttpResponseRedirect(reverse("simulate_customer") + query)
    context = {
        **admin.site.each_context(request),
        "title": _("Simulate a customer message"),
        "form": form,
        "has_accounts": bool(form.accounts),
        **_thread(request, org),
    }
    return TemplateResponse(request, "conversations/simulate_customer.html", context)


def _thread(request, org) -> dict:
    """The conversation the last simulated message went to, and whether to keep refreshing."""
    chat = request.GET.get("chat")
    if not chat or not request.GET.get("account", "").isdigit():
        return {}
    conversation = (
        Conversation.objects.filter(
            org=org, account_id=int(request.GET["account"]), contact__wxid=chat
        )
        .select_related("contact", "account")
        .first()
    )
    after = int(request.GET.get("after") or 0) if request.GET.get("after", "").isdigit() else 0
    sent_at = int(request.GET.get("at") or 0) if request.GET.get("at", "").isdigit() else 0
    waiting_since = max(0, int(time.time()) - sent_at)
    if conversation is None:
        # The webhook has not been processed yet.
        return {"waiting": waiting_since < WAIT_SECONDS, "waited": waiting_since}
    recent = list(Message.objects.filter(org=org, conversation=conversation).order_by("-id")[:8])[
        ::-1
    ]
    answered = Message.objects.filter(
        org=org,
        conversation=conversation,
        id__gt=after,
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.SENT,
    ).exists()
    human = conversation.mode == Conversation.Mode.HUMAN
    return {
        "conversation": conversation,
        "recent": recent,
        "answered": answered,
        "human": human,
        "waiting": not answered and not human and waiting_since < WAIT_SECONDS,
        "waited": waiting_since,
        "workspace_url": reverse("workspace:conversation", args=[conversation.pk]),
    }
