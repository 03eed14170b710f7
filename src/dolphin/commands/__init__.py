"""CLI subcommands: thin wrappers that parse arguments and call pure modules."""
