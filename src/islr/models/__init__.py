"""Model zoo: one registry, one family per file in ``models/torch`` and ``models/tensorflow``."""
