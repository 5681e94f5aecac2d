"""The C part of matching, which pyproject.toml cannot yet declare without a warning.

Everything else about the package is in pyproject.toml. ``mastwatch.rules._native`` holds
the steps of matching whose work grows with the rule set (why: bench/changes.md). It is
optional: without a C compiler the install goes on and ``mastwatch.rules.evaluate`` runs
the same steps in Python, with the same results. The module carries the sha256 of the
source it was built from, so a test can tell a build left over from an older source.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/mastwatch/rules/_native.c"
source_sha256 = hashlib.sha256(Path(__file__).parent.joinpath(SOURCE).read_bytes())

setup(
    ext_modules=[
        Extension(
            "mastwatch.rules._native",
            sources=[SOURCE],
            define_macros=[("SOURCE_SHA256", f'"{source_sha256.hexdigest()}"')],
            optional=True,
        )
    ]
)
