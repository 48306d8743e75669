from lambdalite.cli.main import main

main()
