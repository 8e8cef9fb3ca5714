"""First-party provider plugins, loaded through the ``revo_sdk`` entry points."""
