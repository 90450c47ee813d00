"""Builds the optional compiled parts (pyproject.toml holds everything else).

- ``analysis/sources/sirekap/_partychart.pyx``: the Sirekap parser's party-chart reader;
- ``analysis/turnout/_sampler.pyx``: the spikes test's resampling stage, on numpy's own
  distributions (``numpy.random.c_distributions``, linked from numpy's ``npyrandom`` library).

Without a C compiler (or, for the sampler, numpy at build time) the package installs without
them, and the same code runs in Python with the same results.
"""
import os
from pathlib import Path

from setuptools import Extension, setup

PARTY_CHART = Path("analysis/sources/sirekap/_partychart.pyx")
SAMPLER = Path("analysis/turnout/_sampler.pyx")

try:
    from Cython.Build import cythonize
except ImportError:  # pip installs Cython for the build (pyproject.toml); another build may lack it
    cythonize = None
try:
    import numpy
except ImportError:  # pip installs numpy for the build (pyproject.toml); another build may lack it
    numpy = None


def sampler_extension(source: Path) -> Extension:
    random_lib = os.path.join(os.path.dirname(numpy.__file__), "random", "lib")
    return Extension("analysis.turnout._sampler", [str(source)], include_dirs=[numpy.get_include()],
                     library_dirs=[random_lib], libraries=["npyrandom"],
                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])


sources = [(PARTY_CHART, lambda source: Extension("analysis.sources.sirekap._partychart", [str(source)]))]
if numpy is not None:
    sources.append((SAMPLER, sampler_extension))
extensions = []
for source, make in sources:
    if cythonize is not None and source.exists():
        extensions += cythonize([make(source)], language_level=3, quiet=True)
    elif source.with_suffix(".c").exists():  # an sdist made elsewhere: the C that Cython wrote
        extensions.append(make(source.with_suffix(".c")))
for extension in extensions:
    extension.optional = True  # a failed compile is a warning (cythonize does not keep this attribute)

setup(ext_modules=extensions)
