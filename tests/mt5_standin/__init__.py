"""Test stand-in for the Windows-only MetaTrader5 package (see MetaTrader5/__init__.py).

`control.py` is the test side; the `MetaTrader5` directory is what an agent
process imports with this directory first on its PYTHONPATH. Test code only.
"""
