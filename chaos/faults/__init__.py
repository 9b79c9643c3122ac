"""Faults: small classes with idempotent ``inject()`` and ``revert()`` over a real target.

Named in experiments as ``module:Class`` (e.g. ``chaos.faults.replica:KillReplica``), like
Chaos Toolkit's activities; the runner validates the arguments against the constructor before
anything runs. Import the modules you need; this package stays light.
"""

__all__ = ["base", "cpu", "gpu", "model", "netem", "replica", "surge", "triton"]
