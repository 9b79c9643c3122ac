"""Warden core: records, config, store, engine loop, alerting, CLI."""
