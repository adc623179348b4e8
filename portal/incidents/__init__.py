"""Incidents: the staff writes, the reads bound to a data snapshot, feeds, the demo story."""
