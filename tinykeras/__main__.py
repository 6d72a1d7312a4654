from tinykeras.cli import main

main()
