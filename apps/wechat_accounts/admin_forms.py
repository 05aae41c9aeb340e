"""The console's Moment form: image URLs one per line, images uploaded from the computer, and the
link's title, address, summary and cover as fields of their own, instead of raw JSON.

Everything that can refuse the post is checked in ``clean`` (the account's platform and its image
limit, the link's fields, each upload's size and sniffed type), so ``MomentPostAdmin.save_model``
stores the uploads and creates the post through the services without a late failure."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminFileFieldWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldAdminURLInputWidget,
)

from apps.core.exceptions import ApplicationError
from apps.media.services import application_error_messages, media_upload_check
from apps.wechat_accounts import services
from apps.wechat_accounts.models import MomentPost
from apps.wechat_accounts.services.moments import MEDIA_PREFIX

MAX_IMAGES = 9


class _MultipleFileInput(UnfoldAdminFileFieldWidget):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = _MultipleFileInput

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", _MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleImageField, self).clean(f, initial) for f in files]


class MomentPostForm(forms.ModelForm):
    image_urls = forms.CharField(
        label=_("Image URLs"),
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text=_("One public image address per line; nine images at most in all."),
    )
    image_uploads = MultipleImageField(
        label=_("Upload images"),
        required=False,
        help_text=_("JPEG, PNG, GIF or WebP from your computer."),
    )
    link_title = forms.CharField(
        label=_("Link title"), required=False, max_length=200, widget=UnfoldAdminTextInputWidget
    )
    link_url = forms.URLField(
        label=_("Link address"),
        required=False,
        assume_scheme="https",
        widget=UnfoldAdminURLInputWidget,
    )
    link_description = forms.CharField(
        label=_("Link summary"), required=False, max_length=500, widget=UnfoldAdminTextInputWidget
    )
    link_thumb_url = forms.URLField(
        label=_("Link cover image"),
        required=False,
        assume_scheme="https",
        widget=UnfoldAdminURLInputWidget,
    )

    class Meta:
        model = MomentPost
        fields = ["account", "text", "visibility", "visible_tags", "scheduled_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        post = self.instance
        if post.pk:
            urls = [u for u in post.images or [] if not str(u).startswith(MEDIA_PREFIX)]
            self.fields["image_urls"].initial = "\n".join(urls)
            link = post.link if isinstance(post.link, dict) else {}
            for key in ("title", "url", "description", "thumb_url"):
                self.fields[f"link_{key}"].initial = link.get(key, "")

    def clean_image_urls(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["image_urls"].splitlines()]
        urls = [line for line in lines if line]
        check = URLValidator(schemes=["http", "https"])
        bad = []
        for url in urls:
            try:
                check(url)
            except ValidationError:
                bad.append(url)
        if bad:
            raise ValidationError(
                _("Not a web address: %(urls)s") % {"urls": "、".join(u[:80] for u in bad[:3])}
            )
        return urls

    def clean_image_uploads(self) -> list:
        files = self.cleaned_data["image_uploads"]
        for upload in files:
            try:
                media_upload_check(upload=upload, kind="image")
            except ApplicationError as exc:
                message = "；".join(application_error_messages(exc))
                raise ValidationError(f"{upload.name}: {message}") from exc
        return files

    def clean(self):
        data = super().clean()
        urls = data.get("image_urls") or []
        uploads = data.get("image_uploads") or []
        link = {
            key: data.get(f"link_{key}") or ""
            for key in ("title", "url", "description", "thumb_url")
            if data.get(f"link_{key}")
        }
        if link and not (link.get("url") and link.get("title")):
            self.add_error("link_url", _("A link needs an address and a title."))
        if len(urls) + len(uploads) > MAX_IMAGES:
            self.add_error("image_urls", _("At most %(count)d images.") % {"count": MAX_IMAGES})
        if (urls or uploads) and link:
            self.add_error("link_url", _("A Moment has images or a link, not both."))
        account = data.get("account")
        if account is not None and not self.instance.pk and not self.errors:
            images = urls + [f"{MEDIA_PREFIX}0"] * len(uploads)  # stand-ins for the count
            try:
                services.moment_supported_check(account, images=images, link=link)
            except ApplicationError as exc:
                raise ValidationError(application_error_messages(exc)) from exc
        if not self.errors:  # the model's own checks then see only valid values
            stored = [u for u in self.instance.images or [] if str(u).startswith(MEDIA_PREFIX)]
            self.instance.images = urls + stored  # images uploaded earlier stay
            self.instance.link = link
        return data
