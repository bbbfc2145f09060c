"""`python -m citysoc.cli`, the same as `soc`."""

from citysoc.cli.app import main

main()
