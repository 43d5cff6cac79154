"""Shared fixtures. The emulator starts in milliseconds: its CA is generated once per process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cypht_azure.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh in-memory emulator on an ephemeral port (HTTPS, CA at ``emulator.info['ca_file']``)."""
    with Emulator() as emu:
        yield emu
