"""The webhook receiver records each JSON POST to its path, and refuses anything else."""
import json
import urllib.error
import urllib.request

import pytest

from course.jobs import webhook


def post(url, data):
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_a_json_post_is_recorded_once_with_its_arrival_time():
    with webhook.receiver() as hook:
        assert hook.url.startswith("http://127.0.0.1:")
        assert post(hook.url, json.dumps({"id": "abc", "state": "SUCCESS"}).encode()) == 204
        call = hook.wait(timeout=5)
    assert call["body"] == {"id": "abc", "state": "SUCCESS"}
    assert call["received_at"] > 0
    assert len(hook.calls) == 1


def test_wait_gives_none_when_nothing_arrives():
    with webhook.receiver() as hook:
        assert hook.wait(timeout=0.1) is None


@pytest.mark.parametrize("path, data, code", [("/elsewhere", b"{}", 404), ("", b"not json", 400)])
def test_other_paths_and_bad_bodies_are_refused(path, data, code):
    with webhook.receiver() as hook:
        url = hook.url.rsplit("/hooks/", 1)[0] + path if path else hook.url
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url, data)
    assert refused.value.code == code
    assert hook.calls == []
