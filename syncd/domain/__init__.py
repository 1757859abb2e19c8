"""Pure rules of the sync: ids, statuses and their mapping, conflicts, naming, task kinds.

Nothing here performs IO or reads the clock; callers pass `now` in. Imports nothing from syncd
outside this package.
"""
