"""The compiled part of pmstore; every other setting is in setup.cfg.

``pmstore._copydata`` (pmstore/_copydata.c) is the message loop and row walk of
bulk reads and coverage's gap search: C against Python's headers only (libpq's
functions are passed by address at run time, see pmstore/_read/libpq.py). It is
optional: without a C compiler the build goes on, and the same steps run in Python
and numpy.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pmstore._copydata", sources=["pmstore/_copydata.c"], optional=True)])
