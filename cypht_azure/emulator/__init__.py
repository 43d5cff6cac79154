"""A faithful local emulator of the Microsoft identity platform and Microsoft Graph v1.0.

Only stdlib + ``cryptography``; nothing else from cypht-azure is imported. See docs/emulator.md.
"""

from .faults import FaultRule, Faults
from .models import Caller, Directory
from .requestlog import LogEntry
from .service import Emulator, serve

__all__ = ["Caller", "Directory", "Emulator", "FaultRule", "Faults", "LogEntry", "serve"]
