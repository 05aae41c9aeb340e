from django.urls import path

from apps.reports.api import views

urlpatterns = []
for _name in ("overview", "conversations", "agents", "accounts", "sop", "cost"):
    _view = getattr(views, f"{_name.title()}ReportView")
    _export = getattr(views, f"{_name.title()}ReportExportView")
    urlpatterns += [
        path(f"reports/{_name}/", _view.as_view(), name=f"reports-{_name}"),
        path(f"reports/{_name}/export/", _export.as_view(), name=f"reports-{_name}-export"),
    ]
