"""What each command does, as plain functions over plain values; the CLI only parses and renders."""
