"""Budgets (USD per UTC period, hard or soft) and rate limits (requests/tokens per minute).

``Limits.admit`` before the upstream call, ``Ticket.settle`` after it; see ``limiter``.
"""

from proxy.engine.limits.limiter import Limits, admit_call
from proxy.engine.limits.ticket import Ticket

__all__ = ["Limits", "Ticket", "admit_call"]
