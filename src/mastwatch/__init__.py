"""mastwatch: watches policy and market news and raises tiered alerts."""


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for: the parse
    workers import this package too, and importing ``importlib.metadata`` cost them a
    sixth of their start for a version they never show."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("mastwatch")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
