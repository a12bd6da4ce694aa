"""antiphon."""
