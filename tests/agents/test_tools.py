"""The tools' time gate and argument checks over a real memory store."""

import pytest

from videomind.agents.tools import Toolbox


def test_inspect_is_cut_at_the_time_gate(memory):
    obs = Toolbox(memory, until=100.0).inspect(60, 200, "what is said?")
    assert obs.text.startswith("[1:00-1:40]") and "pineapple" in obs.text
    assert obs.evidence and all(e.end <= 100.0 for e in obs.evidence)
    assert not any(w in obs.text.lower() for w in ("gate 42", "mountains", "balloon", "platform"))


def test_inspect_after_the_time_gate_is_refused_not_inverted(memory):
    with pytest.raises(ValueError, match="span starts after the answer-as-of time"):
        Toolbox(memory, until=100.0).inspect(200, 230, "q")


@pytest.mark.parametrize("t0, t1", [(0, float("inf")), (float("nan"), 10), (-float("inf"), 10)])
def test_inspect_rejects_non_finite_times(memory, t0, t1):
    with pytest.raises(ValueError, match="finite"):
        Toolbox(memory).inspect(t0, t1, "q")
