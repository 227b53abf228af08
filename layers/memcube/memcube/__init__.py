"""memcube: a MemOS-compatible memory service (shared package: domain, ports, adapters, wiring)."""

__version__ = "0.1.0"
