"""Risk rules over (desired, live) pairs: a catalogue of small pure functions with stable ids.

Pure code: no I/O, no event loop.
"""

from driftwatch.rules.engine import CATALOGUE, Escalation, RuleEngine, RuleOptions, max_severity
from driftwatch.rules.model import (
    Direction,
    Finding,
    Hit,
    Rule,
    RuleContext,
    RuleFunc,
    RuleSettings,
    Severity,
    Status,
)

__all__ = [
    "CATALOGUE",
    "Direction",
    "Escalation",
    "Finding",
    "Hit",
    "Rule",
    "RuleContext",
    "RuleEngine",
    "RuleFunc",
    "RuleOptions",
    "RuleSettings",
    "Severity",
    "Status",
    "max_severity",
]
