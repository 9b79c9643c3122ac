"""Warden's Streamlit dashboard over the store (read-only).

Run it with ``warden dashboard [--db PATH] [--port P]`` (``dashboard.cli``) or let ``warden up``
start it (``dashboard.launch.start_dashboard``). Modules: ``app`` (the multipage entry point),
``views/`` (one script per page: fleet, latency, traces, gpus, alerts, chaos), ``ui`` (store,
sidebar, window, error guards), ``queries`` and ``downsample`` (fast SQL reads), ``sources``
(other parts' tables and files: audit, outbox, baselines, chaos journals, router state),
``cache`` (reads cached a few seconds, keyed on the time window), ``charts`` (Vega-Lite
specs), ``settings`` (paths from arguments and environment), ``launch`` (the
Streamlit process). Nothing heavy is imported here.
"""

__all__: list[str] = []
