"""`python -m cortex ...`: the `cortex` command, for an environment whose scripts directory is
not on PATH."""

from cortex.cli.main import main

if __name__ == "__main__":
    main()
