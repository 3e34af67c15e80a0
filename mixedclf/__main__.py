from mixedclf.cli import main

main()
