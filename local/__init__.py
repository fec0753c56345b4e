"""The local stack: the whole system on loopback, driven by template.yaml (never deployed).

It runs the layer in this process, so `shared/` (the layer) is put on sys.path for every
`python -m local...` entry point, as the Lambda runtime does with the layer.
"""

import sys
from pathlib import Path

_SHARED = str(Path(__file__).resolve().parent.parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
