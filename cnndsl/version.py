"""The package's version, in a module of its own: every stage may read it without importing the
package's __init__ (which imports the whole API)."""
__version__ = "0.1.0"
