"""The testcontainers flavour: the chaos suite against Triton's and Prometheus's own images.

For teams with Docker: :class:`ContainerFleet` starts ``nvcr.io/nvidia/tritonserver`` replicas
(explicit model control, a small Python-backend ``synth`` model written to a temp repository
and mounted) and ``prom/prometheus`` scraping them, and exposes them as a
:class:`ContainerTarget` whose kill, hang and restart go through the Docker API (kill, pause,
unpause, start): a container crash and a frozen container, for real. Faults that need the lab's
control endpoint (model and GPU-twin faults) report themselves unavailable there.

:func:`docker_unavailable` says why no engine answers (none runs on the lab machine), and the
``chaos_containers`` fixture skips with that reason.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from chaos.target import Endpoint, Target

__all__ = ["ContainerFleet", "ContainerTarget", "docker_unavailable", "write_model_repository"]

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.0"
READY_TIMEOUT_S = 180.0

_SYNTH_CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 64
input [{{ name: "x", data_type: TYPE_FP32, dims: [4] }}]
output [{{ name: "y", data_type: TYPE_FP32, dims: [4] }}]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
"""
_SYNTH_MODEL = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            out = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
                y = (2.0 * x + 1.0).astype(np.float32)
                out.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", y)]))
            return out
''')


def docker_unavailable() -> str | None:
    """``None`` when a Docker engine answers and testcontainers is installed, else why not."""
    try:
        import docker
        import testcontainers  # noqa: F401
    except ImportError as exc:
        return f"testcontainers/docker not installed ({exc.name}): pip install testcontainers"
    try:
        docker.from_env().ping()
    except Exception as exc:  # the docker SDK raises several types for "no engine"
        return f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def write_model_repository(root: Path, models: tuple[str, ...] = ("synth", "synth_lite")) -> Path:
    """A Triton model repository with the lab's ``synth`` contract (x[4] -> y = 2x + 1)."""
    for name in models:
        d = root / name / "1"
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.py").write_text(_SYNTH_MODEL)
        (root / name / "config.pbtxt").write_text(_SYNTH_CONFIG.format(name=name))
    return root


class ContainerTarget(Target):
    """Replicas that are containers: kill = ``docker kill``, hang = ``docker pause``."""

    def __init__(self, containers: dict[str, Any], **kw: Any) -> None:
        super().__init__(kind="containers", **kw)
        self.containers = containers

    def _c(self, name: str) -> Any:
        self.replica(name)
        return self.containers[name].get_wrapped_container()

    def kill(self, name: str) -> None:
        self._c(name).kill()

    def hang(self, name: str) -> None:
        if self._c(name).status != "paused":
            self._c(name).pause()

    def resume(self, name: str) -> None:
        c = self._c(name)
        c.reload()
        if c.status == "paused":
            c.unpause()

    def restart(self, name: str) -> None:
        c = self._c(name)
        c.start()
        _wait_ready(self.replica(name).url)

    def is_running(self, name: str) -> bool:
        c = self._c(name)
        c.reload()
        return bool(c.status in ("running", "paused"))


def _wait_ready(url: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/models/synth/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Triton at {url} not ready in {timeout:.0f} s")


class ContainerFleet:
    """``replicas`` Triton containers and one Prometheus container; a context manager."""

    def __init__(self, workdir: Path, replicas: int = 2, *, triton_image: str = TRITON_IMAGE,
                 prometheus_image: str = PROMETHEUS_IMAGE) -> None:
        self.workdir, self.n = workdir, replicas
        self.triton_image, self.prometheus_image = triton_image, prometheus_image
        self.tritons: dict[str, Any] = {}
        self.prometheus: Any | None = None
        self.target: ContainerTarget | None = None

    def __enter__(self) -> ContainerFleet:
        from testcontainers.core.container import DockerContainer

        repo = write_model_repository(self.workdir / "models")
        try:
            for i in range(self.n):
                c = (DockerContainer(self.triton_image)
                     .with_exposed_ports(8000, 8002)
                     .with_volume_mapping(str(repo), "/models", "ro")
                     .with_command("tritonserver --model-repository=/models "
                                   "--model-control-mode=explicit --load-model=*"))
                c.start()
                self.tritons[f"r{i}"] = c
            endpoints = {}
            for name, c in self.tritons.items():
                host = c.get_container_host_ip()
                url = f"http://{host}:{c.get_exposed_port(8000)}"
                _wait_ready(url)
                endpoints[name] = Endpoint(name, url, "",
                                           f"http://{host}:{c.get_exposed_port(8002)}/metrics")
            self._start_prometheus(endpoints)
            self.target = ContainerTarget(self.tritons, replicas=endpoints,
                                          access_token="unrestricted")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_prometheus(self, endpoints: dict[str, Endpoint]) -> None:
        from testcontainers.core.container import DockerContainer

        targets = [e.metrics_url.removeprefix("http://").removesuffix("/metrics")
                   for e in endpoints.values()]
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n"
                       f"  - job_name: triton\n    static_configs: [{{targets: {targets}}}]\n")
        self.prometheus = (DockerContainer(self.prometheus_image).with_exposed_ports(9090)
                           .with_volume_mapping(str(cfg), "/etc/prometheus/prometheus.yml", "ro"))
        self.prometheus.start()

    @property
    def prometheus_url(self) -> str:
        assert self.prometheus is not None
        return (f"http://{self.prometheus.get_container_host_ip()}:"
                f"{self.prometheus.get_exposed_port(9090)}")

    def __exit__(self, *exc: object) -> None:
        for c in [*self.tritons.values(), self.prometheus]:
            if c is not None:
                try:
                    c.stop()
                except Exception:  # stopping the rest matters more than this one's error
                    pass
        self.tritons.clear()
        self.prometheus = None
