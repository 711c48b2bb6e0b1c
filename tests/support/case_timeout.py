"""The per-test time limit the socket suites share: a hung case fails instead of stalling a suite.

Each suite's `conftest.py` calls `add_case_timeouts` from its `pytest_collection_modifyitems` hook
with its own limit; a test's own `@pytest.mark.timeout` wins. Without pytest-timeout it does nothing.
"""

from __future__ import annotations

import pytest


def add_case_timeouts(config, items, seconds: float):
    """Marks every collected test that has no timeout marker with `timeout(seconds)`."""
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(seconds))
