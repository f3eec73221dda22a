"""`fissure world ...` commands."""

import typer

world_app = typer.Typer(help="The emoji world: classes, scenes and captions.", no_args_is_help=True)
