"""fastgeo's version (also in pyproject.toml), in a module of its own so that the package's
modules can read it without importing the package façade."""

__version__ = "0.2.0"
