"""The chaos plugin's fixtures for this directory.

The root conftest should register the plugin (``pytest_plugins = ["chaos.pytest_plugin"]``);
until it does, importing the fixtures here makes them available (options then take defaults).
"""

from chaos.pytest_plugin import (  # noqa: F401
    chaos_containers,
    chaos_engine,
    chaos_journal_dir,
    chaos_lab,
    chaos_target,
    run_experiment,
)
