"""Incidents: what one is (records), the staff writes, the reads of one data revision, feeds, the demo."""
