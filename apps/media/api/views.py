from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api.views import OrgScopedGenericViewSet
from apps.core.tenancy import ORG_HEADER
from apps.media import selectors, services, validation
from apps.media.api.serializers import MediaFileSerializer, MediaFileUploadSerializer
from apps.media.models import MediaFile
from apps.media.serving import file_response
from apps.orgs.models import Role

# Multipart framing (boundaries, part headers, the kind field) on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class MediaFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet):
    """Upload (multipart), list and fetch the organisation's media files."""

    queryset = MediaFile.objects.select_related("created_by")
    serializer_class = MediaFileSerializer
    read_role = Role.VIEWER
    write_role = Role.AGENT
    filterset_fields = ["kind", "source"]
    search_fields = ["original_name"]
    ordering_fields = ["created_at", "size"]

    def initial(self, request, *args, **kwargs):
        # <img>/<video> tags cannot send X-Organization: they name the organisation in ?org=.
        # It is resolved exactly like the header (a non-member gets 404).
        org = request.query_params.get("org") if hasattr(request, "query_params") else None
        if org and ORG_HEADER not in request.META:
            request.META[ORG_HEADER] = org
        super().initial(request, *args, **kwargs)

    # Uploads are the only body this viewset reads. (Choosing parsers by ``self.action`` did
    # not work: DRF builds the request's parsers before it sets the action.)
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": MediaFileUploadSerializer},
        responses={
            201: MediaFileSerializer,
            400: OpenApiResponse(description=_("Empty file, or a type the kind does not allow.")),
            413: OpenApiResponse(description=_("Over MEDIA_MAX_UPLOAD_BYTES.")),
        },
    )
    def create(self, request, *args, **kwargs):
        # Refuse an oversized body before parsing it (nothing is read or stored).
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.MEDIA_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD:
            validation.check_size(length, settings.MEDIA_MAX_UPLOAD_BYTES)
        serializer = MediaFileUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        media = services.media_file_create(
            org=request.org,
            content=upload,
            name=upload.name or "",
            kind=serializer.validated_data.get("kind"),
            created_by=request.user,
        )
        return Response(
            MediaFileSerializer(media, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("org", str, description=_("Organisation id or slug (for <img>).")),
            OpenApiParameter("download", bool, description=_("Serve as an attachment.")),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], url_path="content", url_name="content")
    def content(self, request, pk=None):
        """The file's bytes, for members of its organisation only (another org's: 404)."""
        media = selectors.media_file_get(org=request.org, media_file_id=self.get_object().pk)
        response = file_response(media)
        if request.query_params.get("download") in ("1", "true"):
            response["Content-Disposition"] = (
                response["Content-Disposition"].replace("inline", "attachment", 1)
                if "Content-Disposition" in response
                else "attachment"
            )
        return response
