app_name = "health"
urlpatterns = []  # placeholder: the health work fills this
