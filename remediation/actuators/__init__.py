"""Actuators: the one interface remediation changes a fleet through.

``base`` (the :class:`Actuator` Protocol), ``dryrun`` (:class:`DryRun`), ``local``
(:class:`LocalFleet`, drives ``serving/``), ``kubernetes`` (:class:`Kubernetes`), ``emulated_kube``
(:class:`EmulatedKubeApi`, an aiohttp emulation of the few API-server endpoints used, for tests).
Imported on demand, so the ``kubernetes`` client is loaded only where it is used.
"""

from __future__ import annotations

__all__: list[str] = []
