"""Data health of onboarded sources and the records the collectors could not parse, scoped by tenant."""
