"""The command line: a typer app (cli.app) with one module per command group."""


def main() -> None:
    from mixedclf.cli.app import main as run  # deferred: importing the package stays cheap

    run()
