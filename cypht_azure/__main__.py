from cypht_azure.cli import main

main()
