"""Helpers shared by the tests, imported by name (``from helpers.fixtures import fixture_path``).

pytest puts ``tests/`` on ``sys.path`` (rootdir conftest, default import mode), so this package
imports as ``helpers``; pytest fixtures themselves stay in ``tests/conftest.py``.
"""
