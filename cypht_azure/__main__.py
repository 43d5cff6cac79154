from cypht_azure.start import main

main()
