from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.billing.api import views

router = SimpleRouter()
router.register("billing/prices", views.ModelPriceViewSet, basename="billing-price")
router.register("billing/ledger", views.CostLedgerViewSet, basename="billing-ledger")
router.register("billing/budgets", views.BudgetViewSet, basename="billing-budget")
router.register("billing/alerts", views.BudgetAlertViewSet, basename="billing-alert")

urlpatterns = [
    path("billing/usage/", views.UsageView.as_view(), name="billing-usage"),
    *router.urls,
]
