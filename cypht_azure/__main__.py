"""`cypht-azure` and `python -m cypht_azure`."""


def run() -> None:
    import os
    import sys

    argv = sys.argv[1:]
    # `az` first when this run signs in with the Azure CLI: it starts while the CLI loads (azcli.py). The
    # test is plain string work; azcli (subprocess, json ...) is imported only when it holds.
    if "azure-cli" in (os.environ.get("CYPHT_AZURE_AUTH"), *argv) or "--auth=azure-cli" in argv:
        from cypht_azure import azcli

        azcli.start_from_command_line(argv)
    from cypht_azure.cli import main

    main()


if __name__ == "__main__":
    run()
