"""Tools around the local stack that are not the stack itself: the soak and its faults
(`python -m tools.soak`, `tools.chaos`) and the operator's commands: the SMS channel report
(`python -m tools.channel_report`), the search keys' backfill (`tools.backfill`), configuration
and secrets pushes (`tools.config_push`) and the build's arm64 check (`tools.buildcheck`)."""

import sys
from pathlib import Path

_SHARED = str(Path(__file__).resolve().parent.parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
