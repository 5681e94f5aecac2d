"""mastwatch: watches policy and market news and raises tiered alerts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mastwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
