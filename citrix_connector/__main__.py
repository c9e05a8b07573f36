"""``python -m citrix_connector``: the same as the ``citrixagent`` command."""

from .cli import main

if __name__ == "__main__":
    main()
