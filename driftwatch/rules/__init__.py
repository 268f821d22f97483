"""Risk rules over (desired, live) pairs: a catalogue of small pure functions with stable ids.

Pure code: no I/O, no event loop.
"""

from driftwatch.rules.engine import CATALOGUE, RuleEngine, RuleOptions, max_severity
from driftwatch.rules.model import Direction, Finding, Rule, RuleContext, RuleFunc, Severity, Status

__all__ = [
    "CATALOGUE",
    "Direction",
    "Finding",
    "Rule",
    "RuleContext",
    "RuleEngine",
    "RuleFunc",
    "RuleOptions",
    "Severity",
    "Status",
    "max_severity",
]
