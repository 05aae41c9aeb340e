from rest_framework.routers import SimpleRouter

from apps.wechat_accounts.api import views

router = SimpleRouter()
router.register("wechat-accounts", views.WeChatAccountViewSet, basename="wechat-account")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("tags", views.TagViewSet, basename="tag")
router.register("groups", views.GroupViewSet, basename="group")
router.register("moments", views.MomentViewSet, basename="moment")
router.register("friend-requests", views.FriendRequestViewSet, basename="friend-request")

urlpatterns = router.urls
