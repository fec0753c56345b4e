"""The soak's intake waits while too many messages are open, and only then."""

from __future__ import annotations

from tools.soak import Sender


def test_the_intake_waits_while_more_messages_than_the_bound_are_open() -> None:
    counts = iter([450, 320, 300, 299])
    reads: list[int] = []

    def open_messages() -> int:
        reads.append(next(counts))
        return reads[-1]

    sender = Sender("http://api", "http://sim", open_messages=open_messages, max_open=300)
    sender.recheck_seconds = 0.01
    sender._hold_while_backlogged()
    assert reads == [450, 320, 300]
    assert sender.held_seconds > 0


def test_without_a_bound_the_open_count_is_never_read() -> None:
    def open_messages() -> int:
        raise AssertionError("read")

    Sender("http://api", "http://sim", open_messages=open_messages)._hold_while_backlogged()
    Sender("http://api", "http://sim")._hold_while_backlogged()
