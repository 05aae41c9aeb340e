from rest_framework.routers import SimpleRouter

from apps.conversations.api import views

router = SimpleRouter()
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("canned-replies", views.CannedReplyViewSet, basename="canned-reply")

urlpatterns = router.urls
