"""syncd's own persistence: models, unit of work, tenant-scoped repositories, migrations."""
