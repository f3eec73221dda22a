"""CLI command groups, one module per subject; imported without torch so `--help` is instant."""
