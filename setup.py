"""The C part of matching, which pyproject.toml cannot yet declare without a warning.

Everything else about the package is in pyproject.toml. ``mastwatch.rules._native`` holds
the steps of matching whose work grows with the rule set (why: bench/changes.md). It is
optional: without a C compiler the install goes on and ``mastwatch.rules.evaluate`` runs
the same steps in Python, with the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mastwatch.rules._native",
            sources=["src/mastwatch/rules/_native.c"],
            optional=True,
        )
    ]
)
