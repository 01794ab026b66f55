"""The package version (its own module, so that submodules never import the package's ``__init__``)."""

__version__ = "0.1.0"
