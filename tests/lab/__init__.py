"""A lab of network namespaces running the bundles `ovpn` renders with real Xray and HAProxy.

Used by `tests/integration/test_lab_dataplane.py` and by the `bench/` scripts; see docs/lab.md.
"""
