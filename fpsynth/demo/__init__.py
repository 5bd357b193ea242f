"""The built-in synthetic demo dataset and the end-to-end demo command."""
