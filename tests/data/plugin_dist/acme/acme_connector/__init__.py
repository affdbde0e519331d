"""A third-party connector: a manifest, announced through an entry point."""

# Relative to this package's directory (connector.plugin resolves it so).
MANIFEST = "acme.yaml"
