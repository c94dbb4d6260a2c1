"""Operations: backups, point-in-time recovery, monitoring, pooling, promotion."""
