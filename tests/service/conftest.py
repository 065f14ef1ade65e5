"""Fixtures shared by the service tests (re-fit tests in particular)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from refit_factories import shared_compile_cache

from service.store import PriceStore, connect


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One persistent JAX compilation cache for a module and the workers it starts."""
    with shared_compile_cache(tmp_path_factory) as path:
        yield path


@pytest.fixture
def store(redis_url: str) -> Iterator[PriceStore]:
    """A PriceStore on the flushed single node, with a generous timeout for re-fits."""
    s = PriceStore(connect(redis_url, timeout=30.0))
    yield s
    s.close()
