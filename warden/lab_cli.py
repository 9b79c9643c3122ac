"""``warden up`` and ``warden fleet status``."""

from __future__ import annotations

import argparse
import math
import sys
import urllib.error
import urllib.request
from typing import Any

from warden.config import ConfigError, load_config
from warden.lab import Lab, read_lab_info

__all__ = ["histogram_quantile", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = subparsers.add_parser("up", help="start the lab: Triton fleet, router, traffic")
    up.add_argument("--config", help="warden.yaml (default: $WARDEN_CONFIG or built-in)")
    up.add_argument("--replicas", type=int, help="number of Triton replicas")
    up.add_argument("--no-traffic", action="store_true", help="do not start the load generator")
    up.add_argument("--router-port", type=int, help="router port (0 = any free port)")
    up.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    up.add_argument("--dashboard-port", type=int, help="dashboard port (0 = any free port)")
    up.set_defaults(func=cmd_up)

    fleet = subparsers.add_parser("fleet", help="inspect the running lab's fleet")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    status = fleet_sub.add_parser("status", help="replicas, health, outstanding, latency")
    status.add_argument("--config", help="warden.yaml")
    status.set_defaults(func=cmd_fleet_status)


def cmd_up(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return 2
    if args.replicas is not None:
        config.lab.replicas = args.replicas
    if args.dashboard_port is not None:
        config.lab.dashboard_port = args.dashboard_port
    lab = Lab(config, with_traffic=not args.no_traffic, router_port=args.router_port,
              with_dashboard=config.lab.dashboard and not args.no_dashboard)
    print(f"warden: starting {config.lab.replicas} Triton replicas ...", flush=True)
    try:
        info = lab.start()
        print(f"router      {info.router_url}   (admin: {info.router_url}/admin/state, "
              f"metrics: {info.router_url}/metrics)")
        if info.dashboard_url:
            print(f"dashboard   {info.dashboard_url}")
        if info.otlp_url:
            print(f"traces      {info.otlp_url}   store {info.db_path}")
            print(f"warden      {info.metrics_url}")
        for name, r in info.replicas.items():
            print(f"replica {name:<3} {r['url']}   metrics {r['metrics_url']}   "
                  f"control {r['control_url']}   cold start {r['cold_start_s']} s")
        if lab.loadgen is not None:
            p = config.lab.traffic
            print(f"traffic     {p.kind} profile, base {p.rate:g} req/s, models "
                  f"{config.lab.traffic_models}")
        print("Ctrl-C stops everything.", flush=True)
        lab.run_until_interrupted()
    finally:
        print("warden: stopping the lab ...", flush=True)
        if lab.loadgen is not None:
            print(f"traffic summary: {lab.loadgen.summary().table()}")
        lab.stop()
        left = lab.fleet.alive_groups()
        if left:
            print(f"warden: WARNING, process groups still alive: {left}", flush=True)
            return 1
        print("warden: stopped; every replica's process group is gone.", flush=True)
    return 0


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` buckets, sorted by le."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def _router_latency_buckets(router_url: str) -> dict[str, list[tuple[float, float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{router_url}/metrics", timeout=3) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") and "replica" in s.labels:
                out.setdefault(s.labels["replica"], []).append((float(s.labels["le"]), s.value))
    return {k: sorted(v) for k, v in out.items()}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def cmd_fleet_status(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        info = read_lab_info(config.lab_state_path)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return 2
    from serving.router_client import RouterAdmin, RouterAdminError

    admin = RouterAdmin(info.router_url)
    try:
        state: dict[str, Any] = admin.state()
        buckets = _router_latency_buckets(info.router_url)
    except (RouterAdminError, OSError) as exc:
        print(f"warden: router at {info.router_url} not answering: {exc}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    routed = {r["name"]: r for r in state["replicas"]}
    print(f"router {info.router_url}  policy {state['policy']}  variant split "
          f"{state.get('variant_split') or {}}")
    header = (f"{'replica':<8} {'pid':>7} {'ready':>5} {'healthy':>7} {'ejected':>7} "
              f"{'weight':>6} {'outst.':>6} {'requests':>8} {'errors':>6} {'ewma ms':>8} "
              f"{'p50 ms':>7} {'p99 ms':>7}")
    print(header)
    for name, r in sorted(info.replicas.items()):
        s = routed.get(name, {})
        b = buckets.get(name, [])
        print(f"{name:<8} {r['pid']!s:>7} {('yes' if _ready(r['url']) else 'NO'):>5} "
              f"{str(s.get('healthy', '-')):>7} {str(s.get('ejected', '-')):>7} "
              f"{s.get('weight', math.nan):>6.2f} {s.get('outstanding', 0):>6} "
              f"{s.get('requests', 0):>8} {s.get('errors', 0):>6} "
              f"{1e3 * (s.get('ewma') or 0):>8.2f} {1e3 * histogram_quantile(0.5, b):>7.2f} "
              f"{1e3 * histogram_quantile(0.99, b):>7.2f}")
    return 0
