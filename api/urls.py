from django.urls import path

from . import views

app_name = "tokens"

urlpatterns = [
    path("account/tokens/", views.token_list, name="token_list"),
    path("account/tokens/new/", views.token_create, name="token_create"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
