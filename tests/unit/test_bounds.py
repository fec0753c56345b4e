"""Field bounds: a client's value over its bound is named, a carrier's is cut and marked."""

from __future__ import annotations

from smsbridge import bounds
from smsbridge.carriers.base import Receipt, SubmitError
from smsbridge.statuses import Status


def test_a_value_over_either_bound_is_named_without_being_echoed() -> None:
    assert bounds.SENDER.problem("a" * 16) is None
    assert bounds.SENDER.problem("a" * 17) == "sender is over 16 characters"
    wide = bounds.Bound("x", 10, 12)
    assert wide.problem("中" * 4) is None  # 12 bytes
    assert wide.problem("中" * 5) == "x is over 12 UTF-8 bytes"


def test_a_cut_value_fits_both_bounds_and_ends_with_the_mark() -> None:
    for char in ("a", "é", "中", "😀"):
        cut = bounds.OPERATOR.cut(char * 300)
        assert cut.endswith(bounds.CUT_MARK)
        assert bounds.OPERATOR.problem(cut) is None
    assert bounds.OPERATOR.cut("CLARO") == "CLARO"


def test_every_carrier_text_of_a_receipt_is_cut_and_marked() -> None:
    receipt = Receipt(
        gateway_id="1",
        gateway_status="S" * 300,
        status=Status.DELIVERED,
        gateway_error="é" * 300,
        description="中" * 600,
        extra={"carrier": "O" * 300, "receipt_date": "x" * 100, "other": "y" * 900},
    )
    assert receipt.extra["carrier"] == "O" * 58 + bounds.CUT_MARK
    for value, bound in (
        (receipt.gateway_status, bounds.GATEWAY_STATUS),
        (receipt.gateway_error, bounds.GATEWAY_ERROR),
        (receipt.description, bounds.DESCRIPTION),
        (receipt.extra["receipt_date"], bounds.CARRIER_TIME_TEXT),
        (receipt.extra["other"], bounds.RECEIPT_EXTRA),
    ):
        assert value.endswith(bounds.CUT_MARK)
        assert bound.problem(value) is None


def test_a_carriers_submission_error_is_cut_too() -> None:
    error = SubmitError("d" * 3000, gateway_status="s" * 300, gateway_error="e" * 300)
    assert error.description.endswith(bounds.CUT_MARK)
    assert bounds.GATEWAY_STATUS.problem(error.gateway_status) is None
