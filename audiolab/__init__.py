"""audiolab: the helper package of *Everything Is a Mapping*."""

__version__ = "0.1.0"
