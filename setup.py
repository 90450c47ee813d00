"""Builds the optional compiled part of the Sirekap parser (pyproject.toml holds everything else).

Without Cython or a C compiler the package installs without it, and ``parse`` reads party charts in Python.
"""
from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pip installs Cython for the build (pyproject.toml); another build may lack it
    extensions = []
else:
    extensions = cythonize(
        [Extension("analysis.sources.sirekap._partychart", ["analysis/sources/sirekap/_partychart.pyx"])],
        language_level=3, quiet=True)
    for extension in extensions:
        extension.optional = True  # a failed compile is a warning (cythonize does not keep this attribute)

setup(ext_modules=extensions)
