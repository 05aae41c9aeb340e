from rest_framework.routers import SimpleRouter

from apps.conversations.api import drafts, views

router = SimpleRouter()
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("canned-replies", views.CannedReplyViewSet, basename="canned-reply")
router.register("drafts", drafts.DraftViewSet, basename="draft")

urlpatterns = router.urls
