"""Private compiled loops. No validation and no allocation policy lives here."""
