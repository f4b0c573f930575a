"""The databases migcheck runs on: its scratch area, the servers behind --db-url, the guard that
keeps every other database out of reach, and what each dialect can and cannot verify.

Nothing here knows the user's project (migcheck.project builds on this package, never the reverse).
"""
