"""Lifecycle and settings: initialize, initialized, configuration changes, shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import to_fs_path

from aigents_lsp.lsp import completion, models, search
from aigents_lsp.lsp.documents import LineWorkspace
from aigents_lsp.lsp.logs import setup_logging

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)

SECTION = "aigents"


def register(server: AigentsServer) -> None:
    @server.feature(types.INITIALIZE)
    def on_initialize(ls: AigentsServer, params: types.InitializeParams) -> None:
        ls.protocol._workspace = LineWorkspace.replacing(ls.workspace)
        # Kept for `initialized`: the editor is not made to wait while settings load.
        ls.workspace_roots = workspace_roots(params)
        completion.choose_methods(ls, params, ls.workspace_roots)
        ls.init_options = params.initialization_options
        ls.client_name = params.client_info.name if params.client_info else "unknown client"

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: AigentsServer, params: types.InitializedParams) -> None:
        ls.load_base_settings()
        path = setup_logging(ls.settings.log_level, ls.settings.log_file)
        ls.editor_log_handler.bind(asyncio.get_running_loop())  # for records from threads
        logging.getLogger().addHandler(ls.editor_log_handler)
        log.info(
            "aigents-lsp %s for %s; provider %s at %s; log file %s",
            ls.version,
            ls.client_name,
            ls.settings.provider,
            ls.settings.base_url,
            path,
        )
        ls.report_settings_problems()
        ls.send_status(ls.backend.status)
        await pull_configuration(ls)
        ls.run_task(ls.backend.probe(), "backend-probe")
        search.start(ls)
        ls.run_task(models.check_at_start(ls), "model-swap-check")
        workspace = ls.client_capabilities.workspace
        change = workspace.did_change_configuration if workspace else None
        if change and change.dynamic_registration:
            try:
                await ls.client_register_capability_async(
                    types.RegistrationParams(
                        registrations=[
                            types.Registration(
                                id="aigents-configuration",
                                method=types.WORKSPACE_DID_CHANGE_CONFIGURATION,
                                register_options=types.DidChangeConfigurationRegistrationOptions(
                                    section=SECTION
                                ),
                            )
                        ]
                    )
                )
            except Exception as exc:
                log.debug("didChangeConfiguration registration refused: %s", exc)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_configuration_change(
        ls: AigentsServer, params: types.DidChangeConfigurationParams
    ) -> None:
        pushed = params.settings
        if isinstance(pushed, dict) and isinstance(pushed.get(SECTION), dict):
            await ls.apply_client_settings(pushed[SECTION], "didChangeConfiguration")
        else:
            # Most clients send nothing useful here: pull the section again.
            await pull_configuration(ls)

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: AigentsServer, params: Any) -> None:
        log.info("shutdown: stopping the backend")
        ls.persist_stats()
        await ls.aclose()
        search.close(ls)  # after the tasks: a scan running in a thread stops between files


async def pull_configuration(ls: AigentsServer) -> None:
    """`workspace/configuration` for the `aigents` section, when the client offers it."""
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.configuration):
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as exc:
        log.debug("workspace/configuration failed: %s", exc)
        return
    if result and isinstance(result[0], dict):
        await ls.apply_client_settings(result[0], "workspace/configuration")


def workspace_roots(params: types.InitializeParams) -> list[Path]:
    """The workspace folders of `initialize`, else its root URI."""
    roots: list[Path] = []
    for folder in params.workspace_folders or []:
        path = to_fs_path(folder.uri)
        if path:
            roots.append(Path(path))
    if not roots and params.root_uri:
        path = to_fs_path(params.root_uri)
        if path:
            roots.append(Path(path))
    return roots
