from lyra3d.cli import main

main()
