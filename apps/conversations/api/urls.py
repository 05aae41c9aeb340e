from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.conversations.api import account_messages, drafts, views

router = SimpleRouter()
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("canned-replies", views.CannedReplyViewSet, basename="canned-reply")
router.register("drafts", drafts.DraftViewSet, basename="draft")

urlpatterns = [
    path(
        "wechat-accounts/<int:pk>/messages/",
        account_messages.AccountMessageView.as_view(),
        name="wechat-account-messages",
    ),
    *router.urls,
]
