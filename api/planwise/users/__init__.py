"""Accounts: the `user` table, registration and login."""
