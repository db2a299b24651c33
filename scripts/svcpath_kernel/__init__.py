"""svcpath's kernel side: the real kernel in throwaway network namespaces, for `svcpath verify`
and tests/kernel/differential.py (harness.py), and the verify driver (verify.py)."""
