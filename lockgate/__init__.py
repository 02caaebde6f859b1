"""lockgate: a private Python package index for closed networks."""

__version__ = "0.1.0"
