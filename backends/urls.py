app_name = "backends"
urlpatterns = []  # placeholder: the activation work fills this
