from openpartner.cli import main

main()
