from __future__ import annotations

import logging
import pickle

import pytest

from cypht_azure.cli.logs import RedactingFilter
from cypht_azure.secret import Secret


def test_secret_never_prints_itself() -> None:
    s = Secret("Abc8Q~verysecret")
    assert "verysecret" not in repr(s)
    assert "verysecret" not in str(s)
    assert "verysecret" not in f"{s}"
    assert "verysecret" not in repr([s, {"k": s}])
    assert s.reveal() == "Abc8Q~verysecret"
    with pytest.raises(TypeError):
        pickle.dumps(s)


@pytest.mark.parametrize(
    "message",
    [
        "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",
        "token eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig here",
        "body client_id=x&client_secret=Abc8Q~verysecret&scope=y",
        '{"secretText": "Abc8Q~verysecret"}',
    ],
)
def test_redacting_filter(message: str) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None)
    RedactingFilter().filter(record)
    out = record.getMessage()
    assert "verysecret" not in out
    assert "eyJzdWIi" not in out
    assert "<redacted>" in out
