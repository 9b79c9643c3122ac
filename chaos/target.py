"""What an experiment acts on: the local lab, or a fleet given by URLs.

A fault never reaches for a global fleet; it gets a :class:`Target`. Two kinds:

* :class:`LocalTarget` wraps the :class:`serving.fleet.Fleet` this process owns (the lab), so it
  can kill, hang and *restart* replicas.
* :class:`UrlTarget` knows only URLs (and, on the same machine, replica pids from ``lab.json``):
  HTTP faults work everywhere; kill and hang work by pid when pids are known; a restart needs
  the process that owns the fleet, so :meth:`UrlTarget.restart` raises
  :class:`~chaos.errors.FaultUnavailable` saying so.

A target serialises to JSON (:meth:`Target.describe`), so the fault ledger can rebuild faults
for a later cleanup, and the runner subprocess in tests is told its target as a file.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import FaultUnavailable, TargetError

__all__ = ["Endpoint", "LocalTarget", "Target", "UrlTarget", "load_target", "parse_target_spec"]

ACCESS_TOKEN_ENV = "WARDEN_TRITON_ACCESS_TOKEN"


@dataclass(frozen=True)
class Endpoint:
    """One replica's URLs. ``url`` is Triton's HTTP endpoint; ``control_url`` the lab's."""

    name: str
    url: str
    control_url: str = ""
    metrics_url: str = ""
    pid: int | None = None


@dataclass
class Target:
    """URLs of the fleet under test, plus what this process may do to its replicas."""

    replicas: dict[str, Endpoint] = field(default_factory=dict)
    router_url: str = ""
    access_token: str = ""
    db_path: str = ""
    kind: str = "urls"

    def replica(self, name: str) -> Endpoint:
        try:
            return self.replicas[name]
        except KeyError:
            raise FaultUnavailable(f"target has no replica {name!r}; "
                                   f"has {sorted(self.replicas)}") from None

    def refresh(self) -> None:
        """Re-read endpoints (a restarted replica may have a new pid); no-op for URLs."""

    def kill(self, name: str) -> None:
        self._signal(name, signal.SIGKILL)

    def hang(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)

    def restart(self, name: str) -> None:
        raise FaultUnavailable(
            f"cannot restart replica {name!r} from a URL target: only the process that owns the "
            "fleet can (run the cleanup from the lab's process, or restart the pod by hand)")

    def is_running(self, name: str) -> bool:
        pid = self.replica(name).pid
        if pid is None:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _not_zombie(pid)

    def _signal(self, name: str, sig: int) -> None:
        pid = self.replica(name).pid
        if pid is None:
            raise FaultUnavailable(f"replica {name!r}: no pid known on this target, cannot send "
                                   f"{signal.Signals(sig).name} (needs a same-machine lab.json)")
        try:
            os.killpg(pid, sig)  # replicas are session leaders: pgid == pid
        except ProcessLookupError:
            pass

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "router_url": self.router_url, "db_path": self.db_path,
                "replicas": {n: asdict(e) for n, e in self.replicas.items()}}

    def write(self, path: Path, *, with_token: bool = True) -> Path:
        """Save as a target file (the token only if asked: it guards Triton's admin APIs)."""
        data = self.describe() | ({"access_token": self.access_token} if with_token else {})
        path.write_text(json.dumps(data, indent=2))
        return path


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class UrlTarget(Target):
    """A fleet known by URLs (staging, or a lab in another process)."""


class LocalTarget(Target):
    """The fleet this process owns: every capability, restart included."""

    def __init__(self, fleet: Any, *, router_url: str = "", db_path: str = "") -> None:
        super().__init__(router_url=router_url, db_path=db_path,
                         access_token=fleet.config.access_token, kind="local")
        self.fleet = fleet
        self.refresh()

    def refresh(self) -> None:
        self.replicas = {r.name: Endpoint(r.name, r.url, r.control_url, r.metrics_url, r.pid)
                         for r in self.fleet.replicas}

    def kill(self, name: str) -> None:
        self.fleet.kill(name)

    def hang(self, name: str) -> None:
        self.fleet.hang(name)

    def resume(self, name: str) -> None:
        self.fleet.resume(name)

    def restart(self, name: str) -> None:
        self.fleet.restart(name)
        self.refresh()

    def is_running(self, name: str) -> bool:
        return bool(self.fleet.get(name).running)


def parse_target_spec(spec: str, *, access_token: str | None = None) -> UrlTarget:
    """An inline target: ``router=URL,r0=TRITON_URL|CONTROL_URL,r1=TRITON_URL`` (control optional).

    For a staging fleet given by URLs on the command line, without writing a file.
    """
    replicas: dict[str, Endpoint] = {}
    router = ""
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.startswith("http"):
            raise TargetError(f"target spec {spec!r}: expected NAME=URL, got {part!r}")
        if name == "router":
            router = value.rstrip("/")
            continue
        url, _, control = value.partition("|")
        replicas[name] = Endpoint(name, url.rstrip("/"), control.rstrip("/"))
    if not replicas and not router:
        raise TargetError(f"target spec {spec!r} names no replica and no router")
    token = access_token or os.environ.get(ACCESS_TOKEN_ENV, "")
    return UrlTarget(replicas=replicas, router_url=router, access_token=token)


def load_target(path: str | Path, *, access_token: str | None = None) -> UrlTarget:
    """Read a target file (``lab.json`` of :class:`warden.lab.LabInfo`, or :meth:`Target.write`)
    or, when ``path`` is not a file and holds ``NAME=URL`` pairs, an inline spec
    (:func:`parse_target_spec`).

    The Triton access token comes from the argument, the file, or ``$WARDEN_TRITON_ACCESS_TOKEN``.
    """
    if "=" in str(path) and not Path(path).exists():
        return parse_target_spec(str(path), access_token=access_token)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetError(f"cannot read target {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("replicas"), dict):
        raise TargetError(f"target {path}: needs a 'replicas' mapping of name -> urls")
    replicas = {}
    for name, entry in data["replicas"].items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise TargetError(f"target {path}: replicas.{name} needs 'url'")
        replicas[name] = Endpoint(name=name, url=entry["url"],
                                  control_url=entry.get("control_url", ""),
                                  metrics_url=entry.get("metrics_url", ""),
                                  pid=entry.get("pid"))
    token = access_token or data.get("access_token") or os.environ.get(ACCESS_TOKEN_ENV, "")
    return UrlTarget(replicas=replicas, router_url=data.get("router_url", ""),
                     access_token=token, db_path=data.get("db_path", ""), kind="urls")
