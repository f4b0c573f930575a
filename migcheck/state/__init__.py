"""What a database holds, and what a revision's SQL does to it: schema snapshots, the rows in the
tables, the rows generated for the data check, and the recognizer for raw SQL statements.

These modules know SQLAlchemy and nothing of the user's project or of migcheck's scratch area.
"""
