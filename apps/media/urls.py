"""Public media routes (no session): signed URLs for the WeChat platforms."""

from django.urls import path

from apps.media import views

app_name = "media"

urlpatterns = [
    path(
        "s/<int:file_id>/<int:expires>/<str:signature>/<str:name>",
        views.signed_file,
        name="signed",
    ),
    path("cover/video.png", views.video_cover, name="video-cover"),
]
