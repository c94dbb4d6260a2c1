"""Places (Google Place IDs) with their location, category and rating."""
