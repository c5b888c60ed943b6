from django.apps import AppConfig


class ImageworksSiteConfig(AppConfig):
    name = "imageworks_site"
    verbose_name = "ImageWorks site"
