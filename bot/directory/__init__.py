"""The resource directory: loading and checking it, ranking by need, place and hours, HSDS import and export."""
