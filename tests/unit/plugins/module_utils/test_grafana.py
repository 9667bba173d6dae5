"""What role monitoring posts to Grafana, and when it posts at all."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.msgroute.rollout.plugins.filter.grafana_dashboard import FilterModule
from ansible_collections.msgroute.rollout.plugins.module_utils.grafana import (
    dashboard_payload,
    needs_post,
    plan,
)

BOARD = {"uid": "msgroute-shadow-comparison", "title": "shadow", "panels": [{"id": 1, "type": "timeseries"}]}
FOLDER = "msgroute-rollout"


def stored(board: dict, folder: str = FOLDER, **server_keys: int) -> dict:
    """Grafana's answer to GET /api/dashboards/uid/<uid>: the model with its own id and version."""
    return {"dashboard": {**board, "id": 17, "version": 4, **server_keys}, "meta": {"folderUid": folder}}


def test_the_payload_overwrites_by_uid_into_the_folder():
    payload = dashboard_payload({**BOARD, "id": 3, "version": 9}, FOLDER, "msgroute.rollout 2.0.0")
    assert payload == {
        "dashboard": {**BOARD, "id": None},
        "folderUid": FOLDER,
        "overwrite": True,
        "message": "msgroute.rollout 2.0.0",
    }


def test_a_dashboard_without_uid_or_a_missing_folder_is_refused():
    with pytest.raises(ValueError, match="no uid"):
        dashboard_payload({"title": "x"}, FOLDER, "m")
    with pytest.raises(ValueError, match="folder_uid"):
        dashboard_payload(BOARD, "", "m")


def test_an_absent_dashboard_is_posted():
    assert needs_post({"message": "Dashboard not found"}, 404, BOARD, FOLDER)


def test_the_same_dashboard_is_not_posted_again_whatever_id_and_version_grafana_gave_it():
    assert not needs_post(stored(BOARD), 200, BOARD, FOLDER)
    assert not needs_post(stored(BOARD, version=40), 200, BOARD, FOLDER)


def test_a_changed_panel_or_another_folder_is_posted():
    edited = {**BOARD, "panels": [{"id": 1, "type": "stat"}]}
    assert needs_post(stored(edited), 200, BOARD, FOLDER)
    assert needs_post(stored(BOARD, folder="general"), 200, BOARD, FOLDER)


@pytest.mark.parametrize("status", [401, 403, 500])
def test_an_unexpected_answer_is_an_error_not_a_post(status):
    with pytest.raises(ValueError, match=str(status)):
        needs_post({"message": "no"}, status, BOARD, FOLDER)


def test_the_plan_names_the_dashboard_and_carries_the_payload():
    result = plan(BOARD, stored(BOARD), 200, FOLDER, "m")
    assert result["post"] is False
    assert (result["uid"], result["title"]) == (BOARD["uid"], BOARD["title"])
    assert result["payload"]["dashboard"]["uid"] == BOARD["uid"]


def test_the_filter_reads_the_registered_uri_result():
    grafana_dashboard = FilterModule().filters()["grafana_dashboard"]
    assert grafana_dashboard(BOARD, {"status": 404, "json": {}}, FOLDER)["post"] is True
    assert grafana_dashboard(BOARD, {"status": 200, "json": stored(BOARD)}, FOLDER)["post"] is False
    with pytest.raises(AnsibleFilterError, match="registered result"):
        grafana_dashboard(BOARD, {"json": {}}, FOLDER)
    with pytest.raises(AnsibleFilterError, match="unexpected answer 401"):
        grafana_dashboard(BOARD, {"status": 401, "json": {}}, FOLDER)
