from django.apps import AppConfig
from django.core.signals import request_finished, request_started


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self):
        from . import version

        request_started.connect(
            version.request_started, dispatch_uid="registry-version"
        )
        request_finished.connect(
            version.request_finished, dispatch_uid="registry-version"
        )
