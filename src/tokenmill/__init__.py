"""TokenMill: a self-hosted platform that turns AI servers into a metered token service."""

__version__ = "0.1.0"
