"""Session-wide fixtures: the distribution workers start with the session's first test."""

from __future__ import annotations

import pytest

from tests.support.workers import start_workers

DISTRIBUTION_MODULE = "test_distribution"


@pytest.fixture(scope="session", autouse=True)
def distribution_workers(request, tmp_path_factory):
    """Starts the subprocesses the selected distribution tests need (``test_mirrored_*``:
    "mirrored"; ``test_multiworker_*``: "multiworker") when the session starts, so they
    run while the other tests do; kills any still running at the end."""
    modes = {
        item.originalname.split("_")[1]
        for item in request.session.items
        if item.module.__name__.rpartition(".")[2] == DISTRIBUTION_MODULE
        and item.originalname.startswith(("test_mirrored", "test_multiworker"))
    }
    groups = start_workers(modes, tmp_path_factory.mktemp("workers")) if modes else {}
    yield groups
    for group in groups.values():
        group.kill()
