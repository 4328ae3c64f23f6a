"""Who holds a project's leases (the round lease, the serve lease), and whether that holder can still give one back.

The store keeps the leases; these helpers name the holder and judge it dead, so that a lease whose process was
killed is taken over at once instead of blocking the project.
"""

from __future__ import annotations

import os
import socket
import uuid


def lease_holder() -> str:
    """Who this process is, for a lease: host, process id and a token unique to this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """A holder on this host whose process has ended (killed, crashed) will never release its lease."""
    host, pid, _ = holder.split(":", 2)
    if host != socket.gethostname():
        return False  # cannot see another host's processes; its lease stands
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
