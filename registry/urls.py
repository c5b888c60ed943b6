from django.urls import path

from . import job_views, views

app_name = "registry"

urlpatterns = [
    path("models/", views.ModelEntryListView.as_view(), name="modelentry_list"),
    path("models/<int:pk>/", views.modelentry_detail, name="modelentry_detail"),
    path("actions/", views.ActionLogListView.as_view(), name="actionlog_list"),
    path("jobs/<int:pk>/", job_views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/status/", job_views.job_status, name="job_status"),
    path("jobs/<int:pk>/cancel/", job_views.job_cancel, name="job_cancel"),
    # --- feature URLs (verify/lock, edit, import) are added below ---
]
