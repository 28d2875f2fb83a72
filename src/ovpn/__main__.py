from ovpn.cli.main import main

main()
