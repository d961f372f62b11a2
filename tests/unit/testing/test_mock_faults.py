from __future__ import annotations

import pytest

from tollway.testing.mock_faults import FaultSpec, FaultSpecError, split_model


def test_layers_override_in_order() -> None:
    spec = FaultSpec(chunks=5).merged("chunk_delay_ms=10,cut_after=2").merged("chunks=9,echo")
    assert (spec.chunks, spec.chunk_delay_ms, spec.cut_after, spec.echo) == (9, 10.0, 2, True)


def test_error_status_list() -> None:
    assert FaultSpec().merged("error_status=429|503").error_status == (429, 503)


@pytest.mark.parametrize(
    "text", ["nope=1", "chunks=-1", "error_rate=2", "error_status=200", "latency_ms", "echo=maybe"]
)
def test_bad_settings_are_refused(text: str) -> None:
    with pytest.raises(FaultSpecError):
        FaultSpec().merged(text)


def test_split_model() -> None:
    assert split_model("gpt-4o~status=500") == ("gpt-4o", "status=500")
    assert split_model("gpt-4o") == ("gpt-4o", None)
