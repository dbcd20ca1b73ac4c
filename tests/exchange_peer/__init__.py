"""Local exchange peers for tests: real HTTP servers speaking exchange wire formats.

Test code only. Product code must never import this package.
"""
