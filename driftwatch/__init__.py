"""driftwatch: catch drift between NetworkPolicies in Git and the live cluster."""

__version__ = "0.1.0"

__all__ = ["__version__"]
