"""Database plumbing: metadata conventions, engines, sessions and the managed local cluster."""
