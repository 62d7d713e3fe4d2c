"""Persistence: dedupe keys and fencing epochs, the outbound queue, contacts, quarantine."""

from mailport.store.records import Contact, Fate, Fenced, Outgoing, QueuedMail
from mailport.store.store import Store

__all__ = ["Contact", "Fate", "Fenced", "Outgoing", "QueuedMail", "Store"]
