"""Every setting the course reads is documented in .env.example, nothing there is stale, and
COURSE_ENV_FILE decides which settings file the course reads."""
import os
import re
import subprocess
import sys

from conftest import ROOT

SOURCE = (ROOT / "modules/course/settings.py").read_text()
READ = set(re.findall(r'_(?:text|number)\("([A-Z_]+)"', SOURCE)) | set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', SOURCE))
# What compose reads from .env itself: ${NAME:-default} or ${NAME:?message}.
COMPOSE_ONLY = set(re.findall(r"\$\{([A-Z_]+):[-?]", (ROOT / "docker-compose.yml").read_text()))
# A setting whose empty value would mean something is documented as a commented example: "# NAME=...".
DOCUMENTED = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def test_every_setting_is_in_env_example():
    assert READ - DOCUMENTED == set()


def test_env_example_lists_only_settings_something_reads():
    assert DOCUMENTED - READ - COMPOSE_ONLY == set()


def seen_by_a_fresh_process(program: str, tmp_path, **settings: str | None) -> str:
    """What `program` prints in a fresh process of the course with these settings (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update({name: value for name, value in settings.items() if value is not None})
    return subprocess.run([sys.executable, "-c", program], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout.strip()


def chat_model_seen(env_file: str | None, tmp_path) -> str:
    """CHAT_MODEL as the course sees it, with COURSE_ENV_FILE set to `env_file`."""
    return seen_by_a_fresh_process("from course.settings import settings; print(settings.chat_model)",
                                   tmp_path, CHAT_MODEL=None, COURSE_ENV_FILE=env_file)


def test_course_env_file_names_the_file_to_read_and_empty_reads_none(tmp_path):
    elsewhere = tmp_path / "other.env"
    elsewhere.write_text("CHAT_MODEL=model-from-other-env\n")
    assert chat_model_seen(str(elsewhere), tmp_path) == "model-from-other-env"
    assert chat_model_seen("", tmp_path) == "gpt-4o-mini"
    assert chat_model_seen(str(tmp_path / "missing.env"), tmp_path) == "gpt-4o-mini"


def data_folder_seen(value: str | None, tmp_path) -> str:
    return seen_by_a_fresh_process("from course.settings import DATA, shown; print(shown(DATA))",
                                   tmp_path, COURSE_DATA=value)


def test_course_data_moves_the_data_folder_and_messages_show_where(tmp_path):
    assert data_folder_seen(None, tmp_path) == ".course-data"  # in the repo, shown relative to it
    assert data_folder_seen("elsewhere/data", tmp_path) == "elsewhere/data"  # relative to the repo
    assert data_folder_seen(str(tmp_path / "data"), tmp_path) == str(tmp_path / "data")


def test_a_course_data_that_cannot_be_made_says_so_without_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "COURSE_DATA": str(blocker / "data")}
    process = subprocess.run([sys.executable, "-c", "import course.settings"], env=env, cwd=tmp_path,
                             capture_output=True, text=True)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert f"COURSE_DATA={blocker / 'data'} cannot be used" in process.stderr
