"""Grace period logic (RFC 8881 §8.4.2, §18.51) over a fake clock."""

from __future__ import annotations

from securenfs.proto.constants import Stat
from securenfs.recovery.grace import (
    Decision,
    GraceManager,
    GraceState,
    format_status,
    grace_warnings,
)

A, B, C = b"Linux NFSv4.1 alpha", b"Linux NFSv4.1 beta", b"\x00\xffnew-client"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def started(expected=(A, B), grace=90.0, **kw) -> tuple[GraceManager, Clock]:
    clk = Clock()
    g = GraceManager(grace, clock=clk, **kw)
    g.start(expected)
    return g, clk


def end_if_due(g: GraceManager) -> bool:
    if g.due():
        g.finish()
        return True
    return False


def test_decisions_are_the_protocol_status_codes():
    assert Decision.GRACE == Stat.GRACE and Decision.NO_GRACE == Stat.NO_GRACE
    assert Decision.RECLAIM_BAD == Stat.RECLAIM_BAD and Decision.OK == 0


def test_only_recorded_clients_may_reclaim():
    g, _ = started()
    assert g.check_reclaim(A, reclaim_complete_sent=False) is Decision.OK
    assert g.check_reclaim(C, reclaim_complete_sent=False) is Decision.RECLAIM_BAD


def test_non_reclaim_state_and_anonymous_io_get_grace_during_grace():
    g, _ = started()
    assert g.check_new_state(reclaim_complete_sent=True) is Decision.GRACE
    assert g.check_io(special_stateid=True) is Decision.GRACE
    # A stateid obtained by a reclaim cannot conflict with other reclaims (§8.4.2.1).
    assert g.check_io(special_stateid=False) is Decision.OK


def test_reclaim_after_own_reclaim_complete_is_no_grace():
    g, _ = started()
    g.reclaim_complete(A)
    assert g.check_reclaim(A, reclaim_complete_sent=True) is Decision.NO_GRACE
    assert g.in_grace  # B has not finished


def test_grace_ends_early_when_every_recorded_client_completed_or_is_gone():
    g, clk = started()
    g.reclaim_complete(A)
    assert not end_if_due(g)
    g.client_gone(B)
    clk.t += 1
    assert end_if_due(g)
    assert g.state is GraceState.NORMAL
    assert g.check_new_state() is Decision.OK
    assert g.check_reclaim(A, reclaim_complete_sent=False) is Decision.NO_GRACE
    assert g.status()["ended"] == "every recorded client reclaimed or is gone"


def test_one_fs_reclaim_complete_does_not_end_grace():
    g, _ = started(expected=(A,))
    assert g.reclaim_complete(A, one_fs=True, fs=(1, 2)) is Decision.OK
    assert g.reclaim_complete(A, one_fs=True, fs=(1, 2)) is Decision.COMPLETE_ALREADY
    assert not g.due()
    assert g.check_reclaim(A, reclaim_complete_sent=False) is Decision.OK


def test_no_recorded_clients_ends_grace_at_once():
    g, _ = started(expected=())
    assert end_if_due(g)
    assert g.check_new_state() is Decision.OK


def test_timer_ends_grace_and_then_reclaims_get_no_grace():
    g, clk = started(grace=60)
    clk.t += 59.9
    assert not end_if_due(g)
    assert g.seconds_left() is not None and 0 < g.seconds_left() < 0.2
    clk.t += 0.2
    assert end_if_due(g)
    assert g.check_reclaim(B, reclaim_complete_sent=False) is Decision.NO_GRACE
    st = g.status()
    assert st["state"] == "normal" and st["clients_missing"] == sorted([A.decode(), B.decode()])


def test_reclaims_near_the_deadline_extend_it_up_to_the_limit():
    g, clk = started(grace=30, extend_step=1.0, max_extension=3.0)
    clk.t += 29.5
    g.note_reclaim(A)
    clk.t += 0.6  # past the deadline, but someone just reclaimed
    assert not end_if_due(g)
    for _ in range(10):
        clk.t += 0.9
        g.note_reclaim(A)
        if end_if_due(g):
            break
    assert g.state is GraceState.NORMAL
    assert clk.t - 1000.0 <= 30 + 3.0 + 1.0


def test_no_extension_without_recent_reclaims():
    g, clk = started(grace=30)
    clk.t += 10
    g.note_reclaim(A)
    clk.t += 20.1
    assert end_if_due(g)


def test_client_without_reclaim_complete_gets_grace_for_new_state_even_after_grace():
    g, _ = started(expected=())
    end_if_due(g)
    assert g.check_new_state(reclaim_complete_sent=False) is Decision.GRACE
    assert g.check_new_state(reclaim_complete_sent=True) is Decision.OK


def test_cluster_grace_holds_new_state_after_local_grace():
    g, _ = started(expected=())
    g.set_cluster_grace(True)
    end_if_due(g)
    assert g.check_new_state() is Decision.GRACE
    # Reclaims here are over: this node's clients are done.
    assert g.check_reclaim(A, reclaim_complete_sent=False) is Decision.NO_GRACE
    assert g.status()["state"] == "in_grace" and g.status()["local_grace"] == "normal"
    g.set_cluster_grace(False)
    assert g.check_new_state() is Decision.OK


def test_taking_over_clients_gives_them_a_full_grace_period():
    g, clk = started(expected=(A,), grace=60)
    clk.t += 50
    g.add_expected([C])
    assert g.check_reclaim(C, reclaim_complete_sent=False) is Decision.OK
    g.reclaim_complete(A)
    clk.t += 30  # past A's original deadline
    assert not end_if_due(g)
    g.reclaim_complete(C)
    assert end_if_due(g)


def test_taking_over_after_grace_starts_a_new_one():
    g, _ = started(expected=())
    end_if_due(g)
    g.add_expected([C])
    assert g.in_grace and g.check_reclaim(C, False) is Decision.OK
    assert g.check_new_state() is Decision.GRACE


def test_status_counts_and_human_view():
    g, clk = started(expected=(A, B, C), grace=90)
    g.reclaim_complete(A)
    g.client_gone(B)
    clk.t += 30
    st = g.status()
    assert st["state"] == "in_grace"
    assert st["seconds_left"] == 60.0
    assert (st["clients_expected"], st["clients_reclaimed"], st["clients_gone"]) == (3, 1, 1)
    assert st["clients_missing"] == ["0x00ff6e65772d636c69656e74"]
    text = format_status(st)
    assert "IN GRACE, 60 s left" in text and "waiting for: 0x00ff" in text


def test_warnings_for_short_grace():
    assert any("below 30 s" in w for w in grace_warnings(15, 15))
    assert any("shorter than the lease" in w for w in grace_warnings(40, 90))
    assert grace_warnings(90, 90) == []
