"""The domain: pure rules and use cases. It imports no SDK, no database driver, no HTTP client."""
