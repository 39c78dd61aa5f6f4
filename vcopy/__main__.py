from vcopy.cli import main

main()
