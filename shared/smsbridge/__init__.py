"""smsbridge: SMS middleware between back offices and SMS carriers (the shared Lambda layer)."""

__version__ = "0.1.0"
