"""The size bound of every stored field that comes from outside, in characters and UTF-8 bytes.

A field a client sends is refused over its bound (JSON: 422; OFSC: the message is answered
`failed` and never carries the value on); a field a carrier sends is cut to its bound and marked
with `CUT_MARK`, so that the record shows it was cut. The bytes bound is what keeps an item far
below DynamoDB's 400 KB: text of four-byte characters reaches it before the characters bound.
README, "Field sizes", lists the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Ends a carrier's value that was cut to its bound.
CUT_MARK = "…[cut]"


@dataclass(frozen=True, slots=True)
class Bound:
    name: str
    chars: int
    bytes: int

    def problem(self, value: str) -> str | None:
        """Why `value` is over this bound (None when it fits); never echoes the value."""
        if len(value) > self.chars:
            return f"{self.name} is over {self.chars} characters"
        if _utf8_size(value) > self.bytes:
            return f"{self.name} is over {self.bytes} UTF-8 bytes"
        return None

    def cut(self, value: str) -> str:
        """`value` itself when it fits; else cut to fit with `CUT_MARK` at its end."""
        if self.problem(value) is None:
            return value
        room_chars = self.chars - len(CUT_MARK)
        room_bytes = self.bytes - _utf8_size(CUT_MARK)
        head = value[:room_chars].encode("utf-8", "surrogatepass")[:room_bytes]
        return head.decode("utf-8", "ignore") + CUT_MARK


def _utf8_size(value: str) -> int:
    if value.isascii():
        return len(value)
    return len(value.encode("utf-8", "surrogatepass"))


# --- what a client sends (refused over the bound) ---------------------------------------------

#: The client's message id (every API; `intake.MESSAGE_ID_MAX` characters).
MESSAGE_ID = Bound("message_id", 64, 256)
#: The recipient: JSON `to`, OFSC `address`, the `to` of an OFSC JSON or XML body.
TO = Bound("to", 32, 128)
#: The sender name or number: JSON `sender`, the `sender` of an OFSC JSON or XML body.
SENDER = Bound("sender", 16, 64)
#: The message type: JSON `type`, the `type` of an OFSC JSON or XML body.
TYPE = Bound("type", 32, 128)
#: The text: JSON `text`, OFSC `body` (plain) or the `text` of a JSON or XML body. Ten segments
#: are at most 1,530 characters, so no sendable text is near it.
TEXT = Bound("text", 4_000, 16_000)

# --- what a carrier sends (cut and marked over the bound) -------------------------------------

#: The carrier's own status word (`gateway_status`).
GATEWAY_STATUS = Bound("gateway_status", 100, 400)
#: The carrier's error code(s) (`gateway_error`).
GATEWAY_ERROR = Bound("gateway_error", 200, 800)
#: A description, the carrier's or ours (`description`).
DESCRIPTION = Bound("description", 500, 2_000)
#: The operator that handled the message (Concepto Móvil `carrier`, kept as `operator`).
OPERATOR = Bound("operator", 64, 256)
#: A carrier time that could not be read, kept as received (`carrier_time_text`).
CARRIER_TIME_TEXT = Bound("carrier_time_text", 64, 256)
#: Any other text a receipt carries (`Receipt.extra`).
RECEIPT_EXTRA = Bound("receipt field", 500, 2_000)
