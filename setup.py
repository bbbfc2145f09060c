"""The intake's compiled parts (C, built by `pip install -e .` in `make setup`).

Each extension is optional: without a C compiler or the Python headers the build goes on without it, and the
intake takes the pure path that `collectors.native.load` falls back to. Sources live in `collectors/native/`.
"""

from setuptools import Extension, setup


def native(name: str, *sources: str) -> Extension:
    return Extension(f"collectors._{name}", sources=[f"collectors/native/{source}" for source in sources],
                     optional=True, extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"])


setup(ext_modules=[
    native("ids", "ids.c"),  # event ids: BLAKE2b-128 hex of a batch of keys (citysoc.ids)
    native("syslog_header", "syslog_header.c"),  # syslog headers in one pass a line (collectors.syslog_header)
    native("auth", "auth.c"),  # the authentication rules of collectors.auth, one pass over a batch
    native("redact", "redact.c"),  # the lines a free-text secret could be on (collectors.redact)
])
