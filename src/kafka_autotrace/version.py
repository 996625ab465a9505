"""The package version, kept in one place for the instrumentation scope and packaging."""

__version__ = "0.1.0"
