"""Email adapter: pure MIME building and an SMTP sender."""
