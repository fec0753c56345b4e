"""The local stack: the whole system on loopback, driven by template.yaml (never deployed)."""
