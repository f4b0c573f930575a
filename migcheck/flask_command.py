"""`flask migcheck`: migcheck as a command of Flask's CLI (registered by the flask.commands entry point).

Every argument goes to migcheck's own parser, so the options, reports and exit codes are the ones of
`migcheck`. The app is the one the CLI knows: its ScriptInfo's create_app (a project's own
`FlaskGroup(create_app=...)`, e.g. `python manage.py migcheck`), else what `flask` was told
(`flask --app X` on Flask >= 2.2, FLASK_APP or .flaskenv on every version). It is NOT loaded by Flask:
migcheck loads it itself, once its scratch databases are in place, so the app never sees its
configured database.
"""

from __future__ import annotations

import click
from flask.cli import ScriptInfo


@click.command(
    "migcheck",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,  # `flask migcheck --help` is migcheck's own help
    short_help="Check that the migrations match the models (migcheck).",
    help="Check that the Flask-Migrate migrations match the Flask-SQLAlchemy models; "
         "see `flask migcheck --help`.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def migcheck(ctx: click.Context, args: tuple[str, ...]) -> None:
    from migcheck.cli import main  # here: every `flask` command loads this module

    info = ctx.ensure_object(ScriptInfo)  # read, never info.load_app()
    factory = info.create_app  # Flask prefers it to the import path too
    app = info.app_import_path if factory is None else None
    # First, so that an --app given after `migcheck` (argparse: the last one wins) still counts.
    ctx.exit(main([f"--app={app}"] * bool(app) + list(args), prog=ctx.command_path, factory=factory))
