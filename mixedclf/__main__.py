from mixedclf.cli.app import main

main()
