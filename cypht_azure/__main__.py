"""`cypht-azure` and `python -m cypht_azure`."""


def run() -> None:
    import sys

    from cypht_azure import azcli

    azcli.start_from_command_line(sys.argv[1:])  # `az` first: it starts while the CLI loads (azcli.py)
    from cypht_azure.cli import main

    main()


if __name__ == "__main__":
    run()
