from rest_framework.routers import SimpleRouter

from apps.media.api import views

router = SimpleRouter()
router.register("media/files", views.MediaFileViewSet, basename="media-file")

urlpatterns = router.urls
