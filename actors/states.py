"""States a connection actor reports that its node acts on."""

from __future__ import annotations

CANNOT_START = "cannot start"
"""The actor cannot begin its work (its process cannot open the store, say). It cannot
raise an alarm through a store it cannot reach, so its node raises it."""
