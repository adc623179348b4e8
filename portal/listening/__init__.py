"""The listening side: subscriptions, reports, interest, feedback."""
