"""softeval's version: one bottom-layer module, so that every layer can record it without importing the package
face (softeval/__init__.py imports from every layer)."""

__version__ = "0.1.0"
