"""The account dashboard's pages, one module per subject; access.py holds what every page uses."""
