from capkit.cli import run

run()
