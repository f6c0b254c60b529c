"""Third-party plugins written from outside bpttlab, for the plugin tests."""
