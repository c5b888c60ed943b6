"""A fake OpenAI-compatible server (vLLM / LMDeploy shapes): /health and /v1/models.

``models`` is the list of served ids; ``health_code`` the status of ``/health``
(503 = vLLM's "engine dead"); ``models_code`` the status of ``/v1/models``
(404 = a server without the OpenAI model list).
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.base import FakeServer, main


class FakeOpenAI(FakeServer):
    def __init__(self, *, models=None, health_code=200, models_code=200, **kwargs):
        super().__init__(**kwargs)
        self.models = list(models if models is not None else ["served-model"])
        self.health_code = health_code
        self.models_code = models_code

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "models": self.models,
            "health_code": self.health_code,
            "models_code": self.models_code,
        }

    def route(self, method: str, path: str, body: bytes):
        if path == "/health" and method == "GET":
            return self.health_code, "" if self.health_code == 200 else "Engine is dead"
        if path == "/v1/models" and method == "GET":
            if self.models_code != 200:
                return self.models_code, {"detail": "Not Found"}
            return 200, {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "vllm",
                        "root": f"/models/{model}",
                        "parent": None,
                        "max_model_len": 4096,
                        "permission": [],
                    }
                    for model in self.models
                ],
            }
        return 404, {"detail": "Not Found"}


if __name__ == "__main__":
    main(FakeOpenAI, "Fake OpenAI-compatible server")
