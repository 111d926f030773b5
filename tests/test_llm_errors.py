"""A wrong URL, a refused key or an unknown model: one clear line, exit 1, no traceback."""
import socket

from conftest import run_lesson
from course.llm.simulator import launcher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_clear_failure(process, expected):
    output = process.stdout + process.stderr
    assert process.returncode == 1, output
    assert "Traceback" not in output
    assert expected in " ".join(output.split())  # rich may wrap the line


def test_unreachable_base_url_says_so(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    process, _ = run_lesson("02_concurrent_llm", tmp_path, OPENAI_BASE_URL=url)
    assert_clear_failure(process, f"Cannot reach the LLM at {url}")


def test_refused_key_says_so(tmp_path):
    with launcher.start(speed=20, extra_args=["--require-key", "right-key"]) as sim:
        process, _ = run_lesson("02_concurrent_llm", tmp_path,
                                OPENAI_BASE_URL=sim.base_url, OPENAI_API_KEY="wrong-key")
    assert_clear_failure(process, "refused the API key")


def test_unknown_model_says_which_setting_to_change(tmp_path):
    process, _ = run_lesson("02_concurrent_llm", tmp_path, SIM_SPEED="20", CHAT_MODEL="gpt-nonexistent")
    assert_clear_failure(process, "does not know a model")
    assert "CHAT_MODEL" in process.stdout
