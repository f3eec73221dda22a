"""fissure: find, verify and explain the failures of text-to-image diffusion models."""

from importlib.metadata import PackageNotFoundError, version

from fissure.errors import FissureError

try:
    __version__ = version("fissure")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["FissureError", "__version__"]
