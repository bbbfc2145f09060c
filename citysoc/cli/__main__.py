"""`python -m citysoc.cli`, the same as `soc`."""

from citysoc.cli.entry import main

main()
