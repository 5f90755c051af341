"""`python -m tftransfer.cli`: the `tftransfer` command."""

from tftransfer.cli.main import main

if __name__ == "__main__":
    main()
