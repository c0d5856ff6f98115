from rudder.cli import main

main()
