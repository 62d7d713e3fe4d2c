"""Real mail servers (Dovecot, an SMTP sink) for the test suite."""
