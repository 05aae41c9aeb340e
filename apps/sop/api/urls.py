from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.sop.api import views

router = SimpleRouter()
router.register("sop/plans", views.SopPlanViewSet, basename="sop-plan")

deliveries = views.SopDeliveryViewSet.as_view({"get": "list"})
delivery_detail = views.SopDeliveryViewSet.as_view({"get": "retrieve"})
delivery_export = views.SopDeliveryViewSet.as_view({"get": "export"})

urlpatterns = [
    path(
        "sop/plans/<int:plan_pk>/deliveries/",
        deliveries,
        name="sop-plan-deliveries",
    ),
    path(
        "sop/plans/<int:plan_pk>/deliveries/export/",
        delivery_export,
        name="sop-plan-deliveries-export",
    ),
    path(
        "sop/plans/<int:plan_pk>/deliveries/<int:pk>/",
        delivery_detail,
        name="sop-plan-delivery-detail",
    ),
    *router.urls,
]
