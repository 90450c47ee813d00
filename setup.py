"""Builds the optional compiled part of the Sirekap parser (pyproject.toml holds everything else).

Without a C compiler the package installs without it, and ``parse`` reads party charts in Python.
"""
from pathlib import Path

from setuptools import Extension, setup

SOURCE = Path("analysis/sources/sirekap/_partychart.pyx")

try:
    from Cython.Build import cythonize
except ImportError:  # pip installs Cython for the build (pyproject.toml); another build may lack it
    cythonize = None
if cythonize is not None and SOURCE.exists():
    extensions = cythonize([Extension("analysis.sources.sirekap._partychart", [str(SOURCE)])], language_level=3, quiet=True)
elif SOURCE.with_suffix(".c").exists():  # an sdist made elsewhere: the C that Cython wrote
    extensions = [Extension("analysis.sources.sirekap._partychart", [str(SOURCE.with_suffix(".c"))])]
else:
    extensions = []
for extension in extensions:
    extension.optional = True  # a failed compile is a warning (cythonize does not keep this attribute)

setup(ext_modules=extensions)
