"""The sink tests use ``redis_server`` and ``influx_server`` from ``tests/conftest.py``."""
