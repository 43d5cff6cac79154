"""`python -m cypht_azure`: the same entry point as the `cypht-azure` command (start.py)."""

from cypht_azure.start import main

main()
