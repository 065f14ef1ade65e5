"""The ``loadtests/`` folder is not an installed package: import it from the checkout."""

from __future__ import annotations

from service.commands.loadtest import _import_loadtests

_import_loadtests()
