from django.urls import path

from .views import bulk as bulk_views
from .views import edit as edit_views
from .views import entries as views
from .views import importing as import_views
from .views import jobs as job_views
from .views import revert as revert_views
from .views import verify as verify_views

app_name = "registry"

urlpatterns = [
    path("models/", views.ModelEntryListView.as_view(), name="modelentry_list"),
    path(
        "models/<int:pk>/",
        views.ModelEntryDetailView.as_view(),
        name="modelentry_detail",
    ),
    path("models/<int:pk>/json/", views.modelentry_json, name="modelentry_json"),
    path("models/diff/", views.registry_diff, name="registry_diff"),
    path("models/cards/<str:backend>/", views.backend_card, name="backend_card"),
    path("models/recent/", views.recent_actions, name="recent_actions"),
    path("models/columns/", views.table_columns, name="table_columns"),
    path("models/reload/", views.registry_reload, name="registry_reload"),
    path("actions/", views.ActionLogListView.as_view(), name="actionlog_list"),
    path("jobs/<int:pk>/", job_views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/status/", job_views.job_status, name="job_status"),
    path("jobs/<int:pk>/cancel/", job_views.job_cancel, name="job_cancel"),
    path("models/<int:pk>/verify/", verify_views.entry_verify, name="entry_verify"),
    path("models/<int:pk>/lock/", verify_views.entry_lock, name="entry_lock"),
    path("models/<int:pk>/unlock/", verify_views.entry_unlock, name="entry_unlock"),
    path(
        "models/<int:pk>/verify-panel/",
        verify_views.entry_verify_panel,
        name="entry_verify_panel",
    ),
    path("models/<int:pk>/edit/", edit_views.entry_edit, name="entry_edit"),
    path(
        "models/<int:pk>/edit/preview/",
        edit_views.entry_edit_preview,
        name="entry_edit_preview",
    ),
    path(
        "models/<int:pk>/edit/confirm/",
        edit_views.entry_edit_confirm,
        name="entry_edit_confirm",
    ),
    path("models/import/", import_views.import_start, name="import_start"),
    path("models/import/fields/", import_views.import_fields, name="import_fields"),
    path("models/import/review/", import_views.import_review, name="import_review"),
    path("models/import/confirm/", import_views.import_confirm, name="import_confirm"),
    path("models/bulk/", bulk_views.bulk_action, name="bulk_action"),
    path("models/compare/", bulk_views.entry_compare, name="entry_compare"),
    path("models/bulk/<int:pk>/", bulk_views.bulk_progress, name="bulk_progress"),
    path(
        "models/<int:pk>/changes/<int:change_pk>/revert/",
        revert_views.entry_revert,
        name="entry_revert",
    ),
    # --- feature URLs (verify/lock, edit, import) are added below ---
]
