from tokenmill.cli.main import app

app()
