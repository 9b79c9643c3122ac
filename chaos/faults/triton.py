"""Unload a model from one Triton replica through Triton's model-repository API.

PyTriton runs Triton in explicit model-control mode and guards the repository API with its
access token (header ``triton-access-token``), so the target must carry the fleet's token.

Revert, in order: (1) ``load`` through the same API, sending back the model config read at
inject time (and, for PyTriton's Python-backend proxy, its model files), then (2) one real
inference to check the model *works*, and if it does not, (3) restart the replica. Measured
here (PyTriton 0.7.0): step 1 makes Triton report the model ready, but every inference then fails
(``AuthenticationError: digest sent was rejected``: the reloaded stub cannot join the replica's
tensor store), so on the lab the restart is what restores it. On a plain Triton with a model
repository (staging, the testcontainers flavour) step 1 alone suffices.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import httpx

from chaos.errors import ActivityFailed, FaultUnavailable
from chaos.faults.base import Fault, http_call
from chaos.probes import infer_once
from chaos.target import Target

__all__ = ["UnloadModel"]

logger = logging.getLogger("warden.chaos")
LOAD_TIMEOUT_S = 60.0
_PYTRITON_PROXY_FILES = ("communication.py", "data.py", "model.py", "types.py", "telemetry.py")


def _pytriton_files(version: str = "1") -> dict[str, str]:
    try:
        import pytriton
    except ImportError:
        return {}
    proxy = Path(pytriton.__file__).parent / "proxy"
    return {f"file:{version}/{n}": base64.b64encode((proxy / n).read_bytes()).decode()
            for n in _PYTRITON_PROXY_FILES if (proxy / n).exists()}


class UnloadModel(Fault):
    """``POST /v2/repository/models/{model}/unload``; revert loads it back (see module doc)."""

    def __init__(self, target: Target, *, replica: str, model: str) -> None:
        super().__init__(target)
        self.replica, self.model = replica, model
        target.replica(replica)
        self._config: str | None = None

    @property
    def url(self) -> str:
        return self.target.replica(self.replica).url

    def available(self) -> str | None:
        return None if self.target.access_token else (
            "no Triton access token on the target (set WARDEN_TRITON_ACCESS_TOKEN): PyTriton "
            "guards the model-repository API")

    def _headers(self) -> dict[str, str]:
        if not self.target.access_token:
            raise FaultUnavailable(self.available() or "")
        return {"triton-access-token": self.target.access_token}

    def inject(self) -> None:
        headers = self._headers()
        if self._config is None:
            try:
                r = httpx.get(f"{self.url}/v2/models/{self.model}/config", headers=headers,
                              timeout=5)
                self._config = r.text if r.status_code == 200 else None
            except httpx.HTTPError:
                self._config = None
        http_call("POST", f"{self.url}/v2/repository/models/{self.model}/unload",
                  headers=headers, timeout=LOAD_TIMEOUT_S)

    def _works(self) -> bool:
        with httpx.Client() as client:
            return infer_once(client, self.url, self.model, 5.0)[1]

    def revert(self) -> None:
        if self._works():
            return
        headers = self._headers()
        body: dict[str, Any] | None = None
        if self._config:
            body = {"parameters": {"config": self._config, **_pytriton_files()}}
        try:
            http_call("POST", f"{self.url}/v2/repository/models/{self.model}/load",
                      headers=headers, body=body, timeout=LOAD_TIMEOUT_S)
        except ActivityFailed as exc:
            logger.info("reload of %s on %s through Triton failed (%s)", self.model,
                        self.replica, exc)
        if not self._works():
            logger.info("%s on %s does not serve after load: restarting the replica",
                        self.model, self.replica)
            self.target.restart(self.replica)

    def state(self) -> dict[str, Any]:
        return {"config": self._config}

    def restore(self, state: dict[str, Any]) -> None:
        self._config = state.get("config")

    def describe(self) -> str:
        return f"unload model {self.model} on {self.replica}"
