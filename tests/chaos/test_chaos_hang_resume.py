"""A hung replica that does not survive its resume is restarted, and the revert says so.

Triton 2.51 once aborted on SIGCONT after an 8 s stop under traffic (a boost interprocess lock
exception in its Python backend). That abort cannot be provoked on demand, so here the replica
dies the other way a stopped process can: SIGKILL while stopped. The revert must notice, bring
the replica back on its ports, and fail with the reason, so the journal records it.
"""

from __future__ import annotations

import pytest

from chaos.faults.replica import HangReplica, ReplicaDiedOnResume
from chaos.probes import model_ready

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.mark.timeout(120)
def test_a_replica_that_dies_while_hung_is_restarted_and_the_revert_says_so(chaos_target):
    fault = HangReplica(chaos_target, replica="r1")
    fault.inject()
    chaos_target.kill("r1")
    with pytest.raises(ReplicaDiedOnResume, match="r1 died when resumed"):
        fault.revert()
    assert chaos_target.is_running("r1")
    assert model_ready(chaos_target, replica="r1", model="synth")
    fault.revert()  # a replica that lives through its resume: nothing to say
