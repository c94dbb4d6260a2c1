"""Point-in-time recovery with pgBackRest: WAL archiving, full backups, restore to a moment."""
