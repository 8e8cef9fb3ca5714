"""Optional web front ends for webhook receipt: ``wsgi`` and ``flask``."""
