"""A fake Triton server: /v2/health/live, /v2/health/ready, /v2/models/{m}/ready.

``ready_models`` lists the models that answer 200 on their ready endpoint;
``server_ready`` False makes ``/v2/health/ready`` answer 503.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from tests.fakes.base import FakeServer, main


class FakeTriton(FakeServer):
    def __init__(self, *, ready_models=None, server_ready=True, **kwargs):
        super().__init__(**kwargs)
        self.ready_models = list(ready_models or [])
        self.server_ready = server_ready

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "ready_models": self.ready_models,
            "server_ready": self.server_ready,
        }

    def route(self, method: str, path: str, body: bytes):
        if path == "/v2/health/live":
            return 200, ""
        if path == "/v2/health/ready":
            return (200, "") if self.server_ready else (503, "")
        parts = path.split("/")
        # /v2/models/{name}/ready or /v2/models/{name}/versions/{v}/ready
        if len(parts) >= 5 and parts[1:3] == ["v2", "models"] and parts[-1] == "ready":
            name = unquote(parts[3])
            if name in self.ready_models:
                return 200, ""
            return 400, {"error": f"Request for unknown model: '{name}' is not found"}
        return 404, {"error": "Not Found"}


if __name__ == "__main__":
    main(FakeTriton, "Fake Triton server")
