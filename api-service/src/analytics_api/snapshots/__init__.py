"""Snapshots: a verified local copy per version (shared by the workers of one host), opened
read-only and hardened, hot-swapped when the manifest moves."""
