from settlement.cli import main

main()
