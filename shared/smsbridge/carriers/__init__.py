"""Carrier format modules, one per `format` of the configuration (SPEC 4).

`get_format` imports a module only when it is first asked for, so a function loads just the
protocols it uses.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, cast

from smsbridge.config import FORMATS

if TYPE_CHECKING:
    from smsbridge.carriers.base import CarrierFormat


def get_format(format_name: str) -> CarrierFormat:
    """The module implementing `format_name`; KeyError for a format that does not exist."""
    if format_name not in FORMATS:
        raise KeyError(format_name)
    return cast("CarrierFormat", import_module(f"smsbridge.carriers.{format_name}"))
