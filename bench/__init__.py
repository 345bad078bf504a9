"""Performance benchmarks of the proxy (`make bench`); not part of `make test`."""
