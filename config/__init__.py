"""Typed settings: connections, pools, applications and routing; loading and validation."""

from mailport.config.load import ConfigError, InvalidConfig, load, loads
from mailport.config.models import Settings

__all__ = ["ConfigError", "InvalidConfig", "Settings", "load", "loads"]
