"""For Apache Beam's ``--setup_file=./setup.py`` (its workers install the package with it); the
package itself is described in pyproject.toml."""

from setuptools import setup

setup()
